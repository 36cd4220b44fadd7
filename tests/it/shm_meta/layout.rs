//! The tree and its key links, and segments made and removed behind the
//! daemon's back.

use super::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

// ---- 1. layout ----

#[test]
fn tree_has_family_dirs_and_key_links_only_for_keyed_segments() {
    let m = Mounted::new();
    assert_eq!(list(m.root()), ["by-key", "limits", "metrics", "msg", "sem", "shm", "users"]);
    assert_eq!(list(&m.path("by-key")), ["msg", "sem", "shm"]);

    let keyed = create_segment(0x1234abcd, 4096, 0o600);
    let high = create_segment(0xfedc0001_u32 as i32, 8192, 0o640);
    let private = create_segment(libc::IPC_PRIVATE, 12288, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("shm")), ids);
    assert_eq!(list(&m.path("by-key/shm")), ["0x1234abcd", "0xfedc0001"], "a link per keyed segment, none for private");

    for (key, id, size) in [("0x1234abcd", keyed, 4096), ("0xfedc0001", high, 8192)] {
        let link = m.path(format!("by-key/shm/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../shm/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_file());
        assert_eq!(followed.ino(), fs::metadata(m.shm(id)).unwrap().ino(), "{key} leads to shm/{}", id.0);
        assert_eq!(followed.size(), size);
    }
    assert!(fs::metadata(m.shm(private)).unwrap().is_file());
    assert_eq!(xattr(&m.shm(private), "user.ipc.key").unwrap(), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00000000"))), libc::ENOENT);
}

// ---- 2. changes behind the daemon's back ----

#[test]
fn segments_made_and_removed_behind_the_daemons_back_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("shm/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("shm")).is_empty());

    let made = ipcmk_segment(None, 8192, 0o640);
    assert_eq!(made, ShmId(0), "the first id of a fresh IPC namespace");
    let made_key = key_name(kstat(made).perm.key.0);
    let md = fs::metadata(m.path("shm/0")).unwrap();
    assert_eq!((md.size(), md.mode() & 0o777), (8192, 0o640));
    assert_eq!(list(&m.path("by-key/shm")), std::slice::from_ref(&made_key));

    let keyed = create_segment(0x00c0ffee, 4096, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/shm/0x00c0ffee")).unwrap(), Path::new(&format!("../../shm/{}", keyed.0)));
    let mut both = vec![made.0.to_string(), keyed.0.to_string()];
    both.sort();
    assert_eq!(list(&m.path("shm")), both);

    sh_ok(&format!("ipcrm -m {}", made.0));
    assert_eq!(list(&m.path("shm")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(m.shm(made))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/shm/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/shm")), ["0x00c0ffee"]);

    shm::remove(keyed).unwrap();
    assert!(list(&m.path("shm")).is_empty());
    assert!(list(&m.path("by-key/shm")).is_empty());
    assert_eq!(errno(fs::metadata(m.shm(keyed))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);

    let again = create_segment(0x00c0ffee, 4096, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/shm/0x00c0ffee")).unwrap(), Path::new(&format!("../../shm/{}", again.0)));
    sh_ok("ipcrm -M 0x00c0ffee");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(m.shm(again))), libc::ENOENT);
}
