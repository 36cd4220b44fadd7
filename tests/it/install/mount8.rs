//! Through the real mount(8), with the helper installed as on a real system:
//! `mount -t ipcfs`, `mount -t fuse.ipcfs`, fstab lines and `mount -N`.

use super::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The helper installed as on a real system, in the test thread's mount
/// namespace: ipcfs under a temporary PREFIX, whatever install.sh put in
/// SBINDIR (mount.ipcfs, and its link mount.fuse.ipcfs) in (a tmpfs over)
/// /sbin, and a /run of its own for libmount.
struct Installed {
    _sbin: Unmount,
    _run: Unmount,
    tree: Scratch,
}

impl Installed {
    fn new() -> Installed {
        isolate();
        let tree = Scratch::new("system");
        assert_ok(&installer("install", &into_tree(&tree)), "install.sh install");
        let run = Unmount::tmpfs(Path::new("/run"));
        let sbin = Unmount::tmpfs(&system_sbindir());
        for entry in std::fs::read_dir(tree.path("sbin")).unwrap() {
            let entry = entry.unwrap();
            let into = system_sbindir().join(entry.file_name());
            if entry.file_type().unwrap().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), into).unwrap();
            } else {
                std::fs::copy(entry.path(), into).unwrap();
            }
        }
        Installed { _sbin: sbin, _run: run, tree }
    }

    /// A new empty directory to mount on.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.tree.path(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}

fn mount8(args: &[&str]) -> Output {
    run(&mut command("mount", args))
}

#[test]
fn mount_t_ipcfs_runs_the_installed_helper_which_runs_the_installed_ipcfs() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount = Unmount(dir.clone());
    let target = dir.to_str().unwrap();

    let out = mount8(&["-t", "ipcfs", "ipcfs", target, "-o", "allow_other,nofail,x-mine=1"]);
    assert_ok(&out, "mount -t ipcfs");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"rw".to_string()), "{entry:?}");
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");
    assert!(list(&dir).contains(&"shm".to_string()));
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // What systemd runs to start mnt-ipc.mount, on a /mnt of the test's own.
    let [what, place, fstype, options] = unit_mount_settings();
    let place = Path::new(&place);
    // The host may have an ipcfs on /mnt/ipc itself (the README's first
    // command mounts one): the test's tmpfs on /mnt hides it, and only the
    // mount made here counts.
    let hidden = mounted_here(place);
    let _parent = Unmount::tmpfs(place.parent().unwrap());
    std::fs::create_dir(place).unwrap();
    let _unmount_unit = Unmount(place.to_path_buf());
    let out = mount8(&[&what, place.to_str().unwrap(), "-t", &fstype, "-o", &options]);
    assert_ok(&out, "the mount of mnt-ipc.mount");
    let mut made = mounted_here(place);
    for old in &hidden {
        if let Some(i) = made.iter().position(|e| e == old) {
            made.remove(i);
        }
    }
    let entry = the_ipcfs_mount(made, place);
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");

    // mount(8) passes the status of the helper, which passes that of ipcfs.
    let out = mount8(&["-t", "ipcfs", "ipcfs", target, "-o", "bogus"]);
    assert_status(&out, 2, "unknown mount option 'bogus'", "mount -t ipcfs -o bogus");
    let out = run(command("mount", &["-t", "ipcfs", "ipcfs", target]).env("IPCFS_BIN", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "IPCFS_BIN=/nonexistent/ipcfs", "IPCFS_BIN through mount(8)");
    assert!(mounted_here(&dir).is_empty());
}

/// The type the mount table shows, `fuse.ipcfs`, works with mount(8) as
/// `ipcfs` does: mount(8) runs /sbin/mount.fuse.ipcfs, the link install.sh
/// made to mount.ipcfs. (The tmpfs over /sbin holds only what install.sh
/// installed: no mount.fuse of the host's stands in.)
#[test]
fn mount_t_fuse_ipcfs_works_like_mount_t_ipcfs() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount = Unmount(dir.clone());
    let target = dir.to_str().unwrap();
    let helper = system_sbindir().join("mount.fuse.ipcfs");
    assert_eq!(std::fs::read_link(&helper).unwrap(), Path::new("mount.ipcfs"));

    let out = mount8(&["-t", "fuse.ipcfs", "ipcfs", target]);
    assert_ok(&out, "mount -t fuse.ipcfs ipcfs DIR");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"rw".to_string()), "{entry:?}");
    let id = create_segment(0x1058, 4096, 0o600);
    let listing = sh_ok(&format!("ls {}", q(&dir.join("shm"))));
    assert_eq!(listing, format!("{}\n", id.0), "ls DIR/shm");
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // Options pass as with -t ipcfs, and so does the status of ipcfs.
    let out = mount8(&["-t", "fuse.ipcfs", "-o", "ro,nofail,x-mine=1", "mine", target]);
    assert_ok(&out, "mount -t fuse.ipcfs -o ro,nofail,x-mine=1 mine DIR");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "mine");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    sh_ok(&format!("umount {}", q(&dir)));
    let out = mount8(&["-t", "fuse.ipcfs", "-o", "bogus", "ipcfs", target]);
    assert_status(&out, 2, "unknown mount option 'bogus'", "mount -t fuse.ipcfs -o bogus");
    assert!(mounted_here(&dir).is_empty());

    // An fstab line of type fuse.ipcfs: mounted once, however often mount -a runs.
    let fstab = installed.tree.path("fstab");
    std::fs::write(&fstab, format!("ipcfs {target} fuse.ipcfs defaults,nofail 0 0\n")).unwrap();
    let fstab = fstab.to_str().unwrap();
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a with a fuse.ipcfs line");
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a again");
    the_ipcfs_mount(mounted_here(&dir), &dir);
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // Under that name the helper speaks as mount.fuse.ipcfs.
    let out = run(&mut command(&helper, &["ipcfs", target, "-fv", "-t", "fuse.ipcfs"]));
    let said = stderr_of(&out);
    assert!(out.status.success() && said.starts_with("mount.fuse.ipcfs: "), "{said}");
    assert!(said.ends_with(&format!(" -o fsname=ipcfs -- {target}\n")), "{said}");
    assert!(mounted_here(&dir).is_empty(), "fake mode mounted");
    let out = run(&mut command(&helper, &[target]));
    assert_status(&out, 2, "usage: mount.fuse.ipcfs SOURCE MOUNTPOINT", "mount.fuse.ipcfs MOUNTPOINT");
}

#[test]
fn fstab_lines_mount_once_each_and_noauto_ones_on_request() {
    let installed = Installed::new();
    let [named, none, noauto] = ["named", "none", "noauto"].map(|name| installed.dir(name));
    let _unmount = [&named, &none, &noauto].map(|dir| Unmount(dir.clone()));
    let fstab = installed.tree.path("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a comment\n\
             ipcfs {} ipcfs defaults,allow_other,_netdev,x-systemd.requires=foo.service 0 0\n\
             none  {} ipcfs ro,nofail 0 0\n\
             ipcfs {} ipcfs noauto,noexec 0 0\n",
            named.display(),
            none.display(),
            noauto.display()
        ),
    )
    .unwrap();
    let fstab = fstab.to_str().unwrap();

    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a");
    let entry = the_ipcfs_mount(mounted_here(&named), &named);
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");
    let entry = the_ipcfs_mount(mounted_here(&none), &none);
    assert_eq!(entry.source, "none");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    assert!(mounted_here(&noauto).is_empty(), "noauto was mounted");

    // Again: mount(8) sees both mounted (the source is the fsname), mounts nothing on top.
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a again");
    the_ipcfs_mount(mounted_here(&named), &named);
    the_ipcfs_mount(mounted_here(&none), &none);

    assert_ok(&mount8(&["--fstab", fstab, noauto.to_str().unwrap()]), "mount --fstab FILE DIR");
    let entry = the_ipcfs_mount(mounted_here(&noauto), &noauto);
    assert!(entry.options.contains(&"noexec".to_string()), "{entry:?}");
    for dir in [&named, &none, &noauto] {
        sh_ok(&format!("umount {}", q(dir)));
        assert!(mounted_here(dir).is_empty());
    }
}

/// A process in a mount namespace of its own (a copy of the test thread's),
/// which lives until dropped; before it goes, `dir` is unmounted in there.
struct OtherNamespace {
    holder: Child,
    dir: PathBuf,
}

impl OtherNamespace {
    fn new(dir: &Path) -> OtherNamespace {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", "echo ready && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut other = OtherNamespace { holder, dir: dir.to_path_buf() };
        let mut line = String::new();
        BufReader::new(other.holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "unshare did not start");
        other
    }

    /// The namespace's file, for `mount -N` and `nsenter --mount=`.
    fn file(&self) -> String {
        format!("/proc/{}/ns/mnt", self.holder.id())
    }

    fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id())).unwrap()
    }
}

impl Drop for OtherNamespace {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--mount={}", self.file()))
            .arg("umount")
            .arg("-l")
            .arg(&self.dir)
            .output();
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

#[test]
fn mount_n_mounts_in_the_other_namespace() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount_here = Unmount(dir.clone());
    let other = OtherNamespace::new(&dir);

    assert_ok(&mount8(&["-N", &other.file(), "-t", "ipcfs", "ipcfs", dir.to_str().unwrap()]), "mount -N");
    the_ipcfs_mount(mounts_on(&other.mountinfo(), &dir), &dir);
    assert!(mounted_here(&dir).is_empty(), "mount -N mounted here");
    sh_ok(&format!("nsenter --mount={} umount {}", other.file(), q(&dir)));
    assert!(mounts_on(&other.mountinfo(), &dir).is_empty());
}
