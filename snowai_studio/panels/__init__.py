"""What every tool page shares: the page frame (a big preview and an inspector), collapsible inspector
sections, action buttons, the live-source panel, the job runner, the model picker and the output panel.
Each lives in a file named for what it holds; a tool page assembles them with what is its own."""
