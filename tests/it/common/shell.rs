//! Commands as users run them: shell command lines as root or as another
//! user, what they print, and the tools' output (getfattr, ls, lsipc) parsed.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs a shell command line in the test's namespaces.
pub fn sh(script: &str) -> Output {
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).output().unwrap()
}

/// Runs a shell command line and requires success; returns stdout.
pub fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(out.status.success(), "`{script}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a shell command line and requires success; returns stdout as bytes
/// (the segments hold binary data, which `sh_ok` would not accept).
#[track_caller]
pub fn sh_bytes(script: &str) -> Vec<u8> {
    let out = sh(script);
    assert_ok(&out, script);
    out.stdout
}

/// Runs a shell command line under timeout(1): a daemon that wrongly waited,
/// or answered a write with 0 bytes instead of an error (which makes dash and
/// dd retry for ever), must fail the test, not hang it.
pub fn sh_bounded(script: &str) -> Output {
    Command::new("timeout").args(["60", "sh", "-c", script]).stdin(Stdio::null()).output().unwrap()
}

/// Requires a shell command line (bounded) to fail with `message` on stderr.
#[track_caller]
pub fn sh_fails_with(script: &str, message: &str) -> Output {
    let out = sh_bounded(script);
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "`{script}` succeeded but should have failed with {message:?}");
    assert!(stderr.contains(message), "`{script}`: expected {message:?} on stderr, got {stderr:?}");
    out
}

/// `setpriv` set to run what follows as another user, with the given
/// supplementary groups; add the command with `.args([...])`.
pub fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Command {
    let groups_arg = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!("--groups={}", groups.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    };
    let mut command = Command::new("setpriv");
    command.args([format!("--reuid={uid}"), format!("--regid={gid}"), groups_arg, "--".into()]).stdin(Stdio::null());
    command
}

/// Runs a shell command line as another user (`setpriv`), with the given
/// supplementary groups.
pub fn sh_as(uid: u32, gid: u32, groups: &[u32], script: &str) -> Output {
    as_user(uid, gid, groups).args(["sh", "-c", script]).output().unwrap()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command succeeded; its stdout.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "`{what}` failed ({}): {}", out.status, stderr_of(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed and said `message` (the strerror text of the expected errno).
#[track_caller]
pub fn assert_refused(out: &Output, message: &str, what: &str) {
    let stderr = stderr_of(out);
    assert!(
        !out.status.success() && stderr.contains(message),
        "`{what}`: expected a failure saying {message:?}, got {} with stderr {stderr:?} and stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A path quoted for sh.
pub fn q(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// A path as one argument of a command (it must be UTF-8).
pub fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Reads an extended attribute through the filesystem, as text.
pub fn xattr(path: &Path, name: &str) -> std::io::Result<String> {
    let out = Command::new("getfattr").args(["--only-values", "--absolute-names", "-n", name]).arg(path).output()?;
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

/// `getfattr -d` of one path: every user.* attribute and its value.
#[track_caller]
pub fn getfattr_dump(path: &Path) -> HashMap<String, String> {
    let text = sh_ok(&format!("getfattr -d --absolute-names {}", q(path)));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap_or_else(|| panic!("getfattr line {l:?}"));
            (name.to_string(), value.trim_matches('"').to_string())
        })
        .collect()
}

/// `ls FLAGS DIR` (a long listing) with ISO times in UTC, by name:
/// (perms, owner, group, size, time).
pub fn ls_long(dir: &Path, flags: &str) -> HashMap<String, Vec<String>> {
    let text = sh_ok(&format!("TZ=UTC LC_ALL=C ls {flags} --time-style=+%Y-%m-%dT%H:%M:%S%:z {}", q(dir)));
    text.lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            assert_eq!(f.len(), 7, "ls line {l:?}");
            (f[6].clone(), vec![f[0].clone(), f[2].clone(), f[3].clone(), f[4].clone(), f[5].clone()])
        })
        .collect()
}

/// The rows of `lsipc --json` output, by column name (lower case); null is
/// "". lsipc pretty-prints one `"name": value` per line, which is all this
/// parses.
pub fn parse_lsipc_json(text: &str) -> Vec<HashMap<String, String>> {
    let mut rows = Vec::new();
    let mut row: Option<HashMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        if let Some((name, value)) = line.split_once(": ") {
            if value == "[" {
                continue;
            }
            let value = if value == "null" { "" } else { value.trim_matches('"') };
            row.get_or_insert_with(Default::default).insert(name.trim_matches('"').to_string(), value.to_string());
        } else if line.starts_with('}') {
            rows.extend(row.take());
        }
    }
    rows
}

/// The rows of `lsipc OPTIONS --json` (the family's flag and more, such as
/// `-q --bytes`) with the given columns, by column name (lower case); null
/// is "". Times in ISO form, in UTC.
pub fn lsipc_rows(options: &str, columns: &str) -> Vec<HashMap<String, String>> {
    parse_lsipc_json(&sh_ok(&format!("TZ=UTC lsipc {options} --json --time-format=iso -o {columns}")))
}
