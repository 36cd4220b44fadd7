//! `-o` mount options, in the usual FUSE style: comma-separated, repeatable.
//! An option ipcfs does not know is an error, never silently ignored.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::ipc::mount::MsFlags;
use fuser::{Config, MountOption, SessionACL};

use crate::fs::{LONGEST_ATTR_TIMEOUT, UserBudget};

/// What `-o` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub read_only: bool,
    pub acl: SessionACL,
    /// Passed to the kernel as they are.
    pub kernel: Vec<MountOption>,
    pub fsname: String,
    /// `attr_timeout=SECONDS`: how long the kernel may keep entries and
    /// attributes of IPC objects. Zero: every stat asks the kernel.
    pub attr_timeout: Duration,
    /// `all_namespaces`: every IPC namespace under `ns/`.
    pub all_namespaces: bool,
    /// `user_files=N`, `user_waits=N`: what one user may make the daemon hold.
    pub user_budget: UserBudget,
    /// Serve segment files from the segments' own shmem files (FUSE
    /// passthrough) where the kernel and the daemon's privileges allow;
    /// `nopassthrough` turns it off.
    pub passthrough: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            acl: SessionACL::Owner,
            kernel: Vec::new(),
            fsname: "ipcfs".into(),
            attr_timeout: Duration::ZERO,
            all_namespaces: false,
            user_budget: UserBudget::default(),
            passthrough: true,
        }
    }
}

/// Parses every `-o` argument given.
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<MountOptions, String> {
    let mut opts = MountOptions::default();
    for option in args.iter().flat_map(|a| a.as_ref().split(',')).filter(|o| !o.is_empty()) {
        let kernel = match option {
            "ro" => {
                opts.read_only = true;
                MountOption::RO
            }
            "rw" => {
                opts.read_only = false;
                MountOption::RW
            }
            "allow_other" | "allow_root" => {
                let acl = if option == "allow_other" { SessionACL::All } else { SessionACL::RootAndOwner };
                if opts.acl != SessionACL::Owner && opts.acl != acl {
                    return Err("allow_other and allow_root cannot be used together".into());
                }
                opts.acl = acl;
                continue;
            }
            "defaults" => continue,
            "all_namespaces" => {
                opts.all_namespaces = true;
                continue;
            }
            "passthrough" | "nopassthrough" => {
                opts.passthrough = option == "passthrough";
                continue;
            }
            "dev" => MountOption::Dev,
            "nodev" => MountOption::NoDev,
            "suid" => MountOption::Suid,
            "nosuid" => MountOption::NoSuid,
            "exec" => MountOption::Exec,
            "noexec" => MountOption::NoExec,
            "atime" => MountOption::Atime,
            "noatime" => MountOption::NoAtime,
            "sync" => MountOption::Sync,
            "async" => MountOption::Async,
            "dirsync" => MountOption::DirSync,
            "default_permissions" => {
                return Err("default_permissions is not supported: ipcfs applies the kernel's own IPC \
                            permission rule, which default_permissions would replace with a different one"
                    .into());
            }
            "auto_unmount" => {
                return Err("auto_unmount is not supported: it needs the fusermount helper".into());
            }
            "fsname" => return Err("-o fsname needs a value: fsname=NAME".into()),
            _ => match option.split_once('=') {
                Some(("fsname", "")) => return Err("-o fsname= needs a value: it is empty".into()),
                Some(("fsname", name)) => {
                    opts.fsname = name.into();
                    continue;
                }
                Some(("attr_timeout", seconds)) => {
                    opts.attr_timeout = seconds
                        .parse::<f64>()
                        .ok()
                        .filter(|s| (0.0..=LONGEST_ATTR_TIMEOUT.as_secs_f64()).contains(s))
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| {
                            format!(
                                "attr_timeout wants seconds from 0 to {}, not '{seconds}'",
                                LONGEST_ATTR_TIMEOUT.as_secs()
                            )
                        })?;
                    continue;
                }
                Some((name @ ("user_files" | "user_waits"), value)) => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("{name} wants a whole number of at least 1, not '{value}'"))?;
                    if name == "user_files" {
                        opts.user_budget.files = n;
                    } else {
                        opts.user_budget.waits = n;
                    }
                    continue;
                }
                Some((name, _)) => {
                    return Err(format!("unknown mount option '{name}' (in '{option}')"));
                }
                None => return Err(format!("unknown mount option '{option}'")),
            },
        };
        opts.kernel.retain(|o| !conflicts(o, &kernel));
        opts.kernel.push(kernel);
    }
    Ok(opts)
}

/// A later option overrides an earlier one it contradicts, as with mount(8).
fn conflicts(earlier: &MountOption, later: &MountOption) -> bool {
    use MountOption::*;
    let pair = |a: &MountOption, b: &MountOption| {
        matches!((a, b), (RO, RW) | (Dev, NoDev) | (Suid, NoSuid) | (Exec, NoExec) | (Atime, NoAtime) | (Sync, Async))
    };
    earlier == later || pair(earlier, later) || pair(later, earlier)
}

impl MountOptions {
    /// The fuser configuration: `threads` event loops, each with a
    /// descriptor of its own. (ipcfs mounts by itself: see `ipc::mount`.)
    pub fn config(&self, threads: usize) -> Config {
        let mut config = Config::default();
        config.acl = self.acl;
        config.n_threads = Some(threads);
        config.clone_fd = true;
        config
    }

    /// The mount(2) flags these options ask for; nosuid and nodev unless
    /// suid or dev is asked for, as fuser and fusermount do.
    pub fn mount_flags(&self) -> MsFlags {
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        for option in &self.kernel {
            match option {
                MountOption::Suid => flags.remove(MsFlags::MS_NOSUID),
                MountOption::Dev => flags.remove(MsFlags::MS_NODEV),
                MountOption::RO => flags |= MsFlags::MS_RDONLY,
                MountOption::NoExec => flags |= MsFlags::MS_NOEXEC,
                MountOption::NoAtime => flags |= MsFlags::MS_NOATIME,
                MountOption::Sync => flags |= MsFlags::MS_SYNCHRONOUS,
                MountOption::DirSync => flags |= MsFlags::MS_DIRSYNC,
                _ => {}
            }
        }
        flags
    }

    /// The FUSE kernel options besides the descriptor and the owner: who
    /// else may use the mount (the kernel knows only allow_other; fuser
    /// keeps allow_root to root and the owner itself).
    pub fn mount_data(&self) -> String {
        match self.acl {
            SessionACL::All | SessionACL::RootAndOwner => "allow_other".into(),
            SessionACL::Owner => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_read_write_and_owner_only() {
        let o = parse::<&str>(&[]).unwrap();
        assert!(!o.read_only);
        assert_eq!(o.acl, SessionACL::Owner);
    }

    #[test]
    fn comma_separated_and_repeated() {
        let o = parse(&["ro,allow_other", "nosuid,fsname=myipc"]).unwrap();
        assert!(o.read_only);
        assert_eq!(o.acl, SessionACL::All);
        assert_eq!(o.kernel, vec![MountOption::RO, MountOption::NoSuid]);
        assert_eq!(o.fsname, "myipc");
        assert!(!o.all_namespaces);
        assert!(parse(&["ro,all_namespaces"]).unwrap().all_namespaces);
    }

    #[test]
    fn later_options_win() {
        let o = parse(&["ro,rw"]).unwrap();
        assert!(!o.read_only);
        assert_eq!(o.kernel, vec![MountOption::RW]);
    }

    #[test]
    fn unknown_options_are_errors() {
        assert!(parse(&["ro,bogus"]).unwrap_err().contains("'bogus'"));
        assert!(parse(&["uid=5"]).unwrap_err().contains("'uid'"));
        assert!(parse(&["default_permissions"]).is_err());
        assert!(parse(&["allow_other,allow_root"]).is_err());
    }

    #[test]
    fn fsname_needs_a_value() {
        assert_eq!(parse(&["fsname="]).unwrap_err(), "-o fsname= needs a value: it is empty");
        assert_eq!(parse(&["ro,fsname=,rw"]).unwrap_err(), "-o fsname= needs a value: it is empty");
        assert!(parse(&["fsname"]).unwrap_err().contains("fsname=NAME"));
        // The last one given wins, as with every other option.
        assert_eq!(parse(&["fsname=a", "fsname=b"]).unwrap().fsname, "b");
    }

    #[test]
    fn user_budgets_take_whole_numbers() {
        assert_eq!(parse::<&str>(&[]).unwrap().user_budget, UserBudget::default());
        let o = parse(&["user_files=10,user_waits=3"]).unwrap();
        assert_eq!(o.user_budget, UserBudget { files: 10, waits: 3 });
        for bad in ["user_files=0", "user_files=", "user_waits=-1", "user_waits=x", "user_files=1.5"] {
            assert!(parse(&[bad]).unwrap_err().contains("whole number"), "{bad}");
        }
    }

    #[test]
    fn attr_timeout_takes_seconds_within_bounds() {
        assert_eq!(parse::<&str>(&[]).unwrap().attr_timeout, Duration::ZERO);
        assert_eq!(parse(&["attr_timeout=1"]).unwrap().attr_timeout, Duration::from_secs(1));
        assert_eq!(parse(&["attr_timeout=0.25"]).unwrap().attr_timeout, Duration::from_millis(250));
        for bad in ["attr_timeout=", "attr_timeout=-1", "attr_timeout=NaN", "attr_timeout=inf", "attr_timeout=3601"] {
            assert!(parse(&[bad]).unwrap_err().contains("attr_timeout"), "{bad}");
        }
    }
}
