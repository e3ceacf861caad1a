//! Running commands (the `airlock` CLI, clients, tools) and checking how they ended.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cmd`, asserts that it succeeded, and returns its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, asserts that it succeeded, and returns its stdout and stderr.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    output_ok(out, &format!("{cmd:?}"))
}

/// stdout and stderr of a finished command, after asserting that it succeeded.
pub fn output_ok(out: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// Runs `cmd` expecting it to fail with exactly one line of error (how Airlock refuses a
/// bad configuration); returns that line.
pub fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(!out.status.success(), "{cmd:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    lines[0].to_string()
}

/// A directory a test virtualenv variable names (`AIRLOCK_TEST_VENV`, ...), made by
/// `tests/run-all.sh`.
pub fn venv_dir(var: &str) -> std::path::PathBuf {
    std::env::var_os(var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            panic!("{var} is not set: run `bash tests/run-all.sh`, which installs the Python clients into virtualenvs")
        })
}

/// A program of the test virtualenv (`AIRLOCK_TEST_VENV`, made by `tests/run-all.sh`
/// with pip, uv, twine and huggingface_hub).
pub fn venv_tool(name: &str) -> Command {
    Command::new(
        Path::new(&venv_dir("AIRLOCK_TEST_VENV"))
            .join("bin")
            .join(name),
    )
}
