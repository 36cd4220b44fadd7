//! Runs every recipe of docs/cookbook.md against a real mount and checks that
//! it does what the cookbook says.
//!
//! The recipes are not copied here: each is the fenced block of the cookbook
//! that starts with `# recipe: NAME`, read from the file as it is now, with
//! the cookbook's example mount point (/mnt/ipc) and example ids replaced by
//! the test's own ([`Script::with`] fails if the example is not in the text,
//! so a changed recipe fails loudly instead of testing nothing).
//! [`every_recipe_is_run_by_a_test`] makes sure no recipe goes untested.
//!
//! Each recipe runs through `sh -c`, as a user would paste it, under
//! `timeout` so that a recipe that wrongly waits fails instead of hanging.
//! `watch` is replaced by a function that runs its command once. Objects are
//! made and checked with the system calls directly; tests wait for observable
//! conditions (the kernel's waiter counts, the daemon's waiting threads),
//! never for a fixed time.
//!
//! Here: reading the recipes and running them, and the helpers; the tests by
//! family in [`segments`], [`semaphores`], [`queues`] and [`objects`] (any
//! object, and containers).

mod objects;
mod queues;
mod segments;
mod semaphores;

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SemId};

const COOKBOOK: &str = include_str!("../../../docs/cookbook.md");
/// The mount point the cookbook's recipes use.
const EXAMPLE_MOUNT: &str = "/mnt/ipc";

// ---- the recipes ----

/// Every recipe of the cookbook by name: the text of each fenced block whose
/// first line is `# recipe: NAME`.
fn recipes() -> BTreeMap<&'static str, String> {
    let mut recipes = BTreeMap::new();
    let mut lines = COOKBOOK.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        if let Some(name) = block.first().and_then(|l| l.strip_prefix("# recipe: ")) {
            let text = block[1..].join("\n") + "\n";
            assert!(recipes.insert(name.trim(), text).is_none(), "two recipes are called {name}");
        }
    }
    recipes
}

/// A recipe, ready to run.
#[derive(Clone)]
struct Script {
    name: String,
    text: String,
}

/// The recipe called `name`.
fn recipe(name: &str) -> Script {
    let text = recipes().remove(name).unwrap_or_else(|| panic!("docs/cookbook.md has no recipe {name}"));
    Script { name: name.into(), text }
}

/// `watch` runs its command (its last argument) once.
const WATCH_ONCE: &str = "watch() { for command; do :; done; sh -c \"$command\"; }\n";

impl Script {
    /// Replaces the cookbook's example `example` (every occurrence, which
    /// must exist) with `actual`.
    fn with(mut self, example: &str, actual: &str) -> Script {
        assert!(self.text.contains(example), "recipe {} no longer mentions {example:?}:\n{}", self.name, self.text);
        self.text = self.text.replace(example, actual);
        self
    }

    /// The recipe on the test's mount instead of /mnt/ipc.
    fn on(self, m: &Mounted) -> Script {
        let root = m.root().display().to_string();
        self.with(EXAMPLE_MOUNT, &root)
    }

    /// Only the first `n` lines of the recipe.
    fn first_lines(mut self, n: usize) -> Script {
        self.text = self.text.lines().take(n).map(|l| format!("{l}\n")).collect();
        self
    }

    /// What `sh -c` is given.
    fn shell_text(&self) -> String {
        format!("{WATCH_ONCE}{}", self.text)
    }

    fn command(&self, dir: Option<&Path>) -> Command {
        let mut command = Command::new("timeout");
        command.arg(LIMIT.as_secs().to_string()).args(["sh", "-c", &self.shell_text()]);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.stdin(Stdio::null());
        command
    }

    fn run(&self) -> Output {
        self.command(None).output().unwrap()
    }

    /// Runs in `dir` as the working directory.
    fn run_in(&self, dir: &Path) -> Output {
        self.command(Some(dir)).output().unwrap()
    }

    /// Runs as another user, as `setpriv` does it.
    fn run_as(&self, uid: u32, gid: u32) -> Output {
        Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
            .args(["timeout", &LIMIT.as_secs().to_string(), "sh", "-c", &self.shell_text()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs and requires success; returns stdout.
    #[track_caller]
    fn run_ok(&self) -> String {
        self.ok(self.run())
    }

    #[track_caller]
    fn ok(&self, out: Output) -> String {
        assert_ok(&out, &format!("recipe {}:\n{}", self.name, self.text))
    }

    /// Starts the recipe and lets it run (for recipes that wait).
    fn spawn(&self, dir: Option<&Path>) -> Child {
        self.command(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

#[test]
fn every_recipe_is_run_by_a_test() {
    let recipes = recipes();
    assert!(recipes.len() >= 20, "found only {} recipes: is the `# recipe:` marker still used?", recipes.len());
    let tests = [
        include_str!("mod.rs"),
        include_str!("segments.rs"),
        include_str!("semaphores.rs"),
        include_str!("queues.rs"),
        include_str!("objects.rs"),
    ]
    .concat();
    let untested: Vec<_> = recipes.keys().filter(|name| !tests.contains(&format!("recipe(\"{name}\")"))).collect();
    assert!(untested.is_empty(), "recipes no test runs: {untested:?}");
    for (name, text) in &recipes {
        assert!(text.contains(EXAMPLE_MOUNT), "recipe {name} does not use the mount at {EXAMPLE_MOUNT}");
    }
}

// ---- helpers ----

/// Waits for a started recipe to end; its stdout, which must be a success.
#[track_caller]
fn finish(script: &Script, child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    script.ok(out)
}

fn shm_exists(id: ShmId) -> bool {
    match shm::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("shmctl({}): {e}", id.0),
    }
}

fn sem_exists(id: SemId) -> bool {
    match sem::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("semctl({}): {e}", id.0),
    }
}

fn msg_exists(id: MsqId) -> bool {
    match msg::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("msgctl({}): {e}", id.0),
    }
}

/// The id a `by-key` link points to.
fn id_by_key(m: &Mounted, kind: &str, key: i32) -> i32 {
    let target = fs::read_link(m.path(format!("by-key/{kind}/{}", Key(key)))).unwrap();
    let id = target.file_name().unwrap().to_str().unwrap();
    assert_eq!(target, Path::new(&format!("../../{kind}/{id}")));
    id.parse().unwrap()
}

/// `text` as one sh word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}
