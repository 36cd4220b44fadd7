//! The mount(8) helper run the way mount(8) runs it: the options it drops,
//! its failures and exit status, where it finds ipcfs.

use super::*;

use std::path::Path;

#[test]
fn the_helper_mounts_as_mount8_runs_it_dropping_the_options_meant_for_mount8() {
    isolate();
    let destdir = Scratch::new("helper");
    assert_ok(&installer("install", &[("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin())]), "install.sh install");
    let helper = destdir.path(system_sbindir().join("mount.ipcfs").to_str().unwrap().trim_start_matches('/'));
    let dir = TempDir::new("helper-mnt");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();

    let options = "ro,nofail,_netdev,noauto,users,x-systemd.automount,comment=x";
    let out = run(command(&helper, &["ipcfs", target, "-o", options]).env("IPCFS_BIN", ipcfs_bin()));
    assert_ok(&out, &format!("mount.ipcfs ipcfs {target} -o {options}"));
    // Background mode: mounted by the time the helper returns.
    let entry = the_ipcfs_mount(mounted_here(&dir.0), &dir.0);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    let id = create_segment(0x1057, 4096, 0o600);
    assert_eq!(list(&dir.0.join("shm")), vec![id.0.to_string()]);
    assert_eq!(errno(std::fs::create_dir(dir.0.join("msg/0x9"))), libc::EROFS);
    sh_ok(&format!("umount {}", q(&dir.0)));
    assert!(mounted_here(&dir.0).is_empty());
}

#[test]
fn the_helper_fails_clearly_and_passes_on_the_exit_status_of_ipcfs() {
    isolate();
    let helper = Path::new(REPO).join("mount-scripts/mount.ipcfs");
    let dir = TempDir::new("helper-fail");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();
    let helper_run = |args: &[&str]| run(command(&helper, args).env("IPCFS_BIN", ipcfs_bin()));

    let out = helper_run(&["ipcfs", target, "-o", "ro,nofail,bogus"]);
    assert_status(&out, 2, "ipcfs: unknown mount option 'bogus'", "mount.ipcfs -o bogus");
    let out = helper_run(&["ipcfs", "/nonexistent/ipcfs-mnt"]);
    assert_status(&out, 1, "/nonexistent/ipcfs-mnt", "mount.ipcfs on a missing mount point");
    let out = run(command(&helper, &["ipcfs", target]).env("IPCFS_BIN", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "IPCFS_BIN=/nonexistent/ipcfs is not an executable file", "mount.ipcfs, IPCFS_BIN wrong");
    assert_status(&helper_run(&[target]), 2, "usage: mount.ipcfs SOURCE MOUNTPOINT", "mount.ipcfs MOUNTPOINT");
    assert_status(&helper_run(&["ipcfs", target, "-x"]), 2, "unknown option -x", "mount.ipcfs -x");
    assert_status(&helper_run(&["a,b", target]), 2, "has a comma", "mount.ipcfs with a comma in the source");

    // -f (fake) -v (verbose): says what it would run, and runs nothing. mount's
    // -f must never reach ipcfs, for which it means --foreground.
    let out = helper_run(&["ipcfs", target, "-s", "-fnv", "-o", "ro,_netdev", "-t", "ipcfs.x"]);
    let said = format!("mount.ipcfs: {} -o fsname=ipcfs,ro -- {target}\n", ipcfs_bin());
    assert_eq!((out.status.code(), stderr_of(&out)), (Some(0), said));
    assert!(mounted_here(&dir.0).is_empty(), "fake mode mounted");
    assert!(
        stderr_of(&helper_run(&["ipcfs", target, "-fv", "-o", "nofail,fsname=mine"]))
            .contains("fsname=ipcfs,fsname=mine -- ")
    );
}

#[test]
fn the_helper_finds_ipcfs_where_installed_then_next_to_itself_then_in_path() {
    // Fake mode mounts nothing; should it, the mount stays in this thread.
    isolate();
    let tree = Scratch::new("lookup");
    let vars = into_tree(&tree);
    assert_ok(&installer("install", &vars), "install.sh install without DESTDIR");
    let dir = TempDir::new("lookup-mnt");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();
    // -fv prints the ipcfs command line and runs nothing.
    let chosen = |helper: &Path, env: &[(&str, &str)]| {
        let out =
            run(command(helper, &["ipcfs", target, "-fv"]).env("PATH", "/usr/bin:/bin").envs(env.iter().copied()));
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "{}: {stderr}", helper.display());
        assert!(mounted_here(&dir.0).is_empty(), "fake mode mounted");
        stderr.strip_prefix("mount.ipcfs: ").and_then(|s| s.split(" -o ").next()).unwrap().to_string()
    };
    let installed = tree.path("sbin/mount.ipcfs");
    let installed_bin = format!("{}/usr/local/bin/ipcfs", tree.root());
    assert_eq!(chosen(&installed, &[]), installed_bin);
    assert_eq!(chosen(&installed, &[("IPCFS_BIN", ipcfs_bin())]), ipcfs_bin());
    std::os::unix::fs::symlink(ipcfs_bin(), tree.path("sbin/ipcfs")).unwrap();
    assert_eq!(chosen(&installed, &[]), installed_bin, "the installed ipcfs goes before one next to the helper");

    let alone = tree.path("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(Path::new(REPO).join("mount-scripts/mount.ipcfs"), alone.join("mount.ipcfs")).unwrap();
    std::os::unix::fs::symlink(ipcfs_bin(), alone.join("ipcfs")).unwrap();
    assert_eq!(chosen(&alone.join("mount.ipcfs"), &[]), alone.join("ipcfs").to_str().unwrap());

    let source = Path::new(REPO).join("mount-scripts/mount.ipcfs");
    let bin_dir = Path::new(ipcfs_bin()).parent().unwrap().to_str().unwrap();
    assert_eq!(chosen(&source, &[("PATH", &format!("{bin_dir}:/usr/bin:/bin"))]), ipcfs_bin());
    if !Path::new("/usr/bin/ipcfs").exists() && !Path::new("/bin/ipcfs").exists() {
        let out = run(command(&source, &["ipcfs", target]).env("PATH", "/usr/bin:/bin"));
        assert_status(&out, 1, "cannot find the ipcfs binary", "mount.ipcfs with no ipcfs anywhere");
    }
    assert_ok(&installer("uninstall", &vars), "install.sh uninstall");
}
