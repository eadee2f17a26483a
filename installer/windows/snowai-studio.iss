; Inno Setup 6 script: the SnowAI Studio installer for Windows 10/11 (x64).
;
; It installs the PyInstaller one-folder bundle made by installer\snowai-studio.spec, adds a
; Start-menu shortcut (and, if ticked, one on the desktop) and registers an uninstaller.
; installer\build_windows.ps1 builds the bundle and then runs:
;
;   iscc /DAppVersion=0.1.0 /DVariant=cpu /DBundleDir=<repo>\dist\cpu\SnowAI-Studio /DOutputDir=<repo>\dist installer\windows\snowai-studio.iss
;
; Relative paths below are relative to this file's folder.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Variant
  #define Variant "cpu"
#endif
; The bundle folder (the spec's APP_NAME) and its two programs (the spec's GUI_EXE_NAME and EXE_NAME).
#define BundleName "SnowAI-Studio"
#ifndef BundleDir
  #define BundleDir "..\..\dist\" + Variant + "\" + BundleName
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#define AppName "SnowAI Studio"
#define GuiExe "SnowAIStudio.exe"
#define CliExe "snowai-studio.exe"

[Setup]
AppId={{5E0C7A3B-2F4D-4B8E-9C61-7D2A9E4F1B35}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion} ({#Variant})
AppPublisher=SnowAI Studio
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user by default (no administrator needed); the first page offers "all users" as well.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=SnowAI-Studio-{#AppVersion}-windows-x64-{#Variant}-setup
SetupIconFile=snowai-studio.ico
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}
Compression=lzma2
SolidCompression=no
WizardStyle=modern
#if Variant == "gpu"
; The CUDA libraries make the GPU bundle larger than one setup file may be: setup.exe + .bin files.
DiskSpanning=yes
DiskSliceSize=max
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#GuiExe}"; WorkingDir: "{app}"
Name: "{group}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\{#CliExe}"" --self-test"; WorkingDir: "{app}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#GuiExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Files the programs wrote inside their folder after installation (Python byte code, caches).
Type: filesandordirs; Name: "{app}\_internal"
