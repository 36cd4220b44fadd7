//! install.sh into a staging directory and out again, what it refuses,
//! and the systemd unit it installs.

use super::*;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

#[test]
fn install_puts_every_file_in_place_with_its_mode_and_uninstall_removes_exactly_them() {
    let system_sbindir = system_sbindir();
    let default_sbindir = system_sbindir.to_str().unwrap();
    let custom = [("PREFIX", "/opt/ipcfs"), ("SBINDIR", "/sbin/fs.d"), ("UNITDIR", "/etc/systemd/system")];
    for (vars, prefix, sbindir, unitdir) in [
        (&[][..], "/usr/local", default_sbindir, "/usr/local/lib/systemd/system"),
        (&custom[..], "/opt/ipcfs", "/sbin/fs.d", "/etc/systemd/system"),
    ] {
        let destdir = Scratch::new("destdir");
        let mut vars = vars.to_vec();
        vars.extend([("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin())]);

        let mut expected: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
        let mut expect =
            |path: String, mode, contents| expected.insert(path.trim_start_matches('/').into(), (mode, contents));
        expect(format!("{prefix}/bin/ipcfs"), 0o755, without_debug_info(ipcfs_bin()));
        expect(format!("{sbindir}/mount.ipcfs"), 0o755, installed_helper_text(prefix).into_bytes());
        let unit = std::fs::read(Path::new(REPO).join("mount-scripts/mnt-ipc.mount")).unwrap();
        expect(format!("{unitdir}/mnt-ipc.mount"), 0o644, unit);
        // The man pages are installed when docs/ has them.
        for section in ["8", "5"] {
            if let Ok(page) = std::fs::read(Path::new(REPO).join(format!("docs/ipcfs.{section}"))) {
                expect(format!("{prefix}/share/man/man{section}/ipcfs.{section}"), 0o644, page);
            }
        }

        // mount(8) runs mount.fuse.ipcfs for `mount -t fuse.ipcfs`: a link to
        // mount.ipcfs, relative, so that it holds under DESTDIR too.
        let links = BTreeMap::from([(format!("{sbindir}/mount.fuse.ipcfs"), "mount.ipcfs")]);
        let links: BTreeMap<String, &str> =
            links.into_iter().map(|(path, to)| (path.trim_start_matches('/').to_string(), to)).collect();

        let out = installer("install", &vars);
        assert_ok(&out, &format!("install.sh install with {vars:?}"));
        let found = files_under(destdir.dir());
        let mut names: Vec<&String> = expected.keys().chain(links.keys()).collect();
        names.sort();
        assert_eq!(found.keys().collect::<Vec<_>>(), names, "{vars:?}");
        for (path, to) in &links {
            assert!(found[path].is_symlink(), "{path} is not a symbolic link");
            assert_eq!(std::fs::read_link(destdir.path(path)).unwrap(), Path::new(to), "{path}");
        }
        for (path, (mode, contents)) in &expected {
            let meta = &found[path];
            assert!(meta.is_file(), "{path} is not a plain file");
            assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
            assert!(std::fs::read(destdir.path(path)).unwrap() == *contents, "{path} has the wrong contents");
        }

        let out = installer("uninstall", &vars);
        let said = assert_ok(&out, &format!("install.sh uninstall with {vars:?}"));
        let removed = said.lines().filter(|l| l.starts_with("removed ")).count();
        assert_eq!(removed, expected.len() + links.len(), "{said}");
        assert!(files_under(destdir.dir()).is_empty(), "uninstall left files behind");
        // Nothing left to remove is no error.
        assert_eq!(assert_ok(&installer("uninstall", &vars), "a second uninstall"), "");
    }
}

#[test]
fn the_installer_explains_itself_and_refuses_what_it_cannot_do() {
    let out = installer::<&str>("--help", &[]);
    let help = assert_ok(&out, "install.sh --help");
    for word in ["install", "uninstall", "build", "DESTDIR", "PREFIX", "SBINDIR", "UNITDIR", "BINARY"] {
        assert!(help.contains(word), "--help does not mention {word}: {help}");
    }
    assert_status(&installer::<&str>("frobnicate", &[]), 2, "usage:", "install.sh frobnicate");

    let destdir = Scratch::new("refused");
    let with = |var, value| [("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin()), (var, value)];
    let out = installer("install", &with("PREFIX", "usr/local"));
    assert_status(&out, 1, "must be absolute paths", "install.sh install with a relative PREFIX");
    let out = installer("install", &with("BINARY", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "BINARY=/nonexistent/ipcfs is not an executable file", "install.sh install without binary");
    assert!(files_under(destdir.dir()).is_empty(), "a refused install installed something");

    // Without BINARY: target/release/ipcfs, if no source is newer. In a copy
    // of the repository's layout, with the times set.
    let repo = Scratch::new("repo");
    for dir in ["mount-scripts", "src", "target/release"] {
        std::fs::create_dir_all(repo.path(dir)).unwrap();
    }
    for script in ["install.sh", "mount.ipcfs", "mnt-ipc.mount"] {
        let script = format!("mount-scripts/{script}");
        std::fs::copy(Path::new(REPO).join(&script), repo.path(&script)).unwrap();
    }
    let now = std::time::SystemTime::now();
    let set_time = |path: &str, time| std::fs::File::open(repo.path(path)).unwrap().set_modified(time).unwrap();
    for source in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        std::fs::write(repo.path(source), "").unwrap();
        set_time(source, now - std::time::Duration::from_secs(60));
    }
    std::fs::copy(ipcfs_bin(), repo.path("target/release/ipcfs")).unwrap();
    set_time("target/release/ipcfs", now);
    let install = |destdir: &Scratch| installer_in(repo.dir(), "install", &[("DESTDIR", destdir.root())]);
    let fresh = Scratch::new("fresh");
    assert_ok(&install(&fresh), "install.sh install of a fresh release build");
    assert!(fresh.path("usr/local/bin/ipcfs").is_file());
    set_time("src/main.rs", now + std::time::Duration::from_secs(1));
    let stale = Scratch::new("stale");
    assert_status(&install(&stale), 1, "is older than", "install.sh install of a stale release build");
    assert!(files_under(stale.dir()).is_empty(), "a stale build was installed");
}

#[test]
fn the_systemd_unit_is_valid_and_named_after_its_mount_point() {
    assert_eq!(unit_mount_settings(), ["ipcfs", "/mnt/ipc", "ipcfs", "allow_other"]);
    // systemd-analyze checks among other things that the name is Where=, escaped.
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let unit = Path::new(REPO).join("mount-scripts/mnt-ipc.mount");
        assert_ok(
            &run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(unit)),
            "systemd-analyze verify",
        );
    }
}
