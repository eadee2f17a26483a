"""Going live: the face swap and the voice conversion together, out as a virtual camera and a virtual microphone."""
