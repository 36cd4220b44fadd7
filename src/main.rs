//! The `ipcfs` command: parse, mount, serve.
//!
//! Without `--foreground`, ipcfs starts itself again as the daemon and returns
//! once that daemon reports the mount ready, so a script can use the mount on
//! its next line.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use clap::Parser;

use ipcfs::fs::{Budgets, IpcFs};
use ipcfs::fuse::IpcFuse;
use ipcfs::ipc::Errno;
use ipcfs::ipc::daemon::{self, StopSignals};
use ipcfs::ipc::mount::{self, FuseMount};
use ipcfs::ipc::ns::{self, Kind, Namespace};
use ipcfs::options::{self, MountOptions};
use ipcfs::router::Namespaces;

/// Event loops serving the kernel (the machine this was tuned on has 2 cores).
const THREADS: usize = 2;
const READY: &str = "ready";
/// The type the mount shows in /proc/mounts and findmnt: `fuse.ipcfs`.
const SUBTYPE: &str = "ipcfs";
const FS_TYPE: &str = "fuse.ipcfs";
/// The log filter without RUST_LOG: real problems only. fuser reports a
/// reply the kernel no longer waits for (its answer to the interrupt of a
/// wait that has just ended) and an unmount it did not do as errors; neither
/// is one.
const QUIET: &str = "warn,fuser::session=error,fuser::reply=off";

/// Mount the System V IPC objects of an IPC namespace (this one, by default) as files.
#[derive(Parser, Debug)]
#[command(name = "ipcfs", version, about, long_about = None)]
struct Cli {
    /// Mount options, comma-separated: ro, rw, allow_other, allow_root,
    /// nosuid, nodev, noexec, noatime, fsname=NAME, attr_timeout=SECONDS,
    /// all_namespaces, ...
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,

    /// Stay in the foreground until unmounted (or SIGINT/SIGTERM).
    #[arg(short = 'f', long)]
    foreground: bool,

    /// Serve the IPC namespace this file names (such as /proc/PID/ns/ipc)
    /// instead of the one ipcfs runs in.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    ipc_ns: Option<PathBuf>,

    /// Serve the IPC namespace of process PID.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,

    /// Show every IPC namespace on the host under MOUNTPOINT/ns/ as well
    /// (the same as -o all_namespaces).
    #[arg(short = 'A', long)]
    all_namespaces: bool,

    /// Internal: run as the daemon of a background mount, reporting
    /// readiness on stdout.
    #[arg(long, hide = true)]
    daemon: bool,

    /// Where to mount.
    mountpoint: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = match options::parse(&cli.options) {
        Ok(o) => MountOptions { all_namespaces: o.all_namespaces || cli.all_namespaces, ..o },
        Err(e) => {
            eprintln!("ipcfs: {e}");
            return ExitCode::from(2);
        }
    };
    let mountpoint = match cli.mountpoint.canonicalize() {
        Ok(p) => match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => p,
            Ok(_) => return fail(&format!("{}: not a directory", p.display())),
            Err(e) if e.raw_os_error() == Some(Errno::ENOTCONN as i32) => {
                return fail(&format!(
                    "{0}: {e}: a FUSE filesystem whose daemon is gone is mounted there; run umount -l {0} first",
                    p.display()
                ));
            }
            Err(e) => return fail(&format!("{}: {e}", p.display())),
        },
        Err(e) => return fail(&format!("{}: {e}", cli.mountpoint.display())),
    };
    let namespace = cli.ipc_ns.or(cli.pid.map(|pid| ns::process_path(pid, Kind::Ipc)));
    let serving = cli.foreground || cli.daemon;
    if let Some(path) = namespace {
        // Before any thread starts: threads made later share the namespace.
        if let Err(e) = enter_ipc_namespace(&path, serving) {
            return fail(&format!("{}: {e}", path.display()));
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(QUIET)).init();
    if serving { serve(&mountpoint, &options, cli.daemon) } else { start_daemon(&mountpoint) }
}

/// Joins the IPC namespace `path` names (only checks that it names one when
/// not `entering`: the daemon started in the background joins it). setns
/// changes the calling thread only, so this must run before any other
/// thread is made; every later thread is made from this one and shares it.
fn enter_ipc_namespace(path: &Path, entering: bool) -> Result<(), String> {
    let explain = |e: Errno| match e {
        Errno::EINVAL => "not an IPC namespace (give /proc/PID/ns/ipc)".to_string(),
        other => other.desc().to_string(),
    };
    let namespace = Namespace::open(path, Kind::Ipc).map_err(explain)?;
    if entering {
        namespace.enter().map_err(|e| format!("cannot enter its IPC namespace: {}", explain(e)))?;
    }
    Ok(())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("ipcfs: {message}");
    ExitCode::FAILURE
}

/// Starts `ipcfs --daemon` and waits until it says the mount is ready (or dies).
fn start_daemon(mountpoint: &Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find my own executable: {e}")),
    };
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.retain(|a| a != "-f" && a != "--foreground");
    let child = Command::new(exe)
        .arg("--daemon")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return fail(&format!("cannot start the daemon: {e}")),
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() == READY {
        return ExitCode::SUCCESS;
    }
    match child.wait() {
        Ok(status) if !status.success() => ExitCode::FAILURE,
        _ => fail(&format!("the daemon for {} stopped before the mount was ready", mountpoint.display())),
    }
}

/// Mounts and serves until unmounted.
fn serve(mountpoint: &Path, options: &MountOptions, daemon: bool) -> ExitCode {
    // Block the stop signals before any thread starts, so that every thread
    // inherits the mask and only the watcher below receives them.
    let stop = match StopSignals::block() {
        Ok(stop) => stop,
        Err(e) => return fail(&format!("cannot block signals: {e}")),
    };
    // Before any budget is drawn from it: systemd starts services with a
    // soft limit of 1,024 descriptors, far below what the kernel allows.
    if let Err(e) = ipcfs::ipc::limits::raise_open_files() {
        log::warn!("cannot raise the descriptor limit: {e}");
    }
    if let Err(e) = ipcfs::fs::waiting::start_watcher() {
        return fail(&format!("cannot start the thread that watches waiting callers: {e}"));
    }
    let budgets = Budgets::new(options.user_budget);
    let mount_device = Arc::new(std::sync::OnceLock::new());
    let mut fs = IpcFs::new()
        .read_only(options.read_only)
        .attr_timeout(options.attr_timeout)
        .with_budgets(budgets.clone())
        .with_device(mount_device.clone());
    let mut router = None;
    if options.all_namespaces {
        match Namespaces::new(options.read_only, options.attr_timeout, budgets, mount_device.clone()) {
            Ok(namespaces) => {
                fs = fs.with_namespaces(namespaces.clone());
                router = Some(namespaces);
            }
            Err(e) => return fail(&format!("cannot tell which IPC namespace I am in: {e}")),
        }
    }
    let fs = Arc::new(fs);
    let stopping = fs.clone();
    if mount::visible(mountpoint).is_some_and(|m| m.fs_type == FS_TYPE) {
        return fail(&format!(
            "{}: an ipcfs is already mounted there (unmount it first: umount {0}, or umount -l {0} if its daemon is gone)",
            mountpoint.display()
        ));
    }
    let flags = options.mount_flags();
    let (device, mounted) = match mount::mount(mountpoint, &options.fsname, SUBTYPE, flags, &options.mount_data()) {
        Ok(mounted) => mounted,
        // The error names the mount point where it matters, the step that
        // failed and, for a refusal, what it takes.
        Err(e) => return fail(&e.to_string()),
    };
    let mounted = Arc::new(mounted);
    // For users/: which processes have files of this mount mapped.
    if let Ok(dev) = mount::device_number(mountpoint) {
        let _ = mount_device.set(dev);
    }
    let adapter = IpcFuse::new(fs, router, options.passthrough);
    let forgetter = adapter.forgetter();
    let session = match fuser::Session::from_fd(adapter, device, options.acl, options.config(THREADS)) {
        Ok(session) => session,
        Err(e) => {
            let _ = mounted.unmount(true);
            return fail(&format!("cannot serve {}: {e}", mountpoint.display()));
        }
    };
    forgetter.set_notifier(session.notifier());
    log::info!("mounted on {}", mountpoint.display());
    let ours = mounted.clone();
    std::thread::spawn(move || unmount_on_signal(stop, &ours, &stopping));
    if daemon && let Err(e) = detach() {
        log::warn!("cannot detach from the terminal: {e}");
    }
    let served = session.run();
    // Normally someone unmounted it already; if the connection ended some
    // other way (aborted through /sys/fs/fuse), the mount goes too, if it
    // is still ours.
    let still_mounted = match mounted.unmount(true) {
        Ok(unmounted) => unmounted,
        Err(e) => {
            log::warn!("cannot unmount {}: {e}", mountpoint.display());
            true
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        // The kernel may end the connection of a mount that is already gone
        // (detached, its last open file closed) by aborting it: the end of
        // serving, not a failure.
        Err(e) if e.raw_os_error() == Some(Errno::ECONNABORTED as i32) && !still_mounted => ExitCode::SUCCESS,
        Err(e) => fail(&format!("serving {} failed: {e}", mountpoint.display())),
    }
}

/// Reports readiness to `start_daemon` and lets go of the terminal: a new
/// session, `/` as working directory, stdio on /dev/null (stderr stays when
/// RUST_LOG asks for logs).
fn detach() -> std::io::Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "{READY}")?;
    out.flush()?;
    daemon::leave_terminal(std::env::var_os("RUST_LOG").is_some())
}

/// The first SIGINT/SIGTERM/SIGHUP unmounts (lazily if files are still open,
/// in which case the daemon serves them until they close, but every waiting
/// operation ends, with EINTR and nothing taken); a second one ends the
/// daemon at once.
fn unmount_on_signal(stop: StopSignals, mounted: &FuseMount, fs: &IpcFs) {
    if let Ok(signal) = stop.wait() {
        let path = mounted.path.display();
        log::info!("{signal}: unmounting {path}");
        fs.stop_waits();
        // Only our own mount: if it is gone, or something is mounted on top
        // of it, nothing is unmounted here.
        match mounted.unmount(false) {
            Ok(done) => log::info!("{}", if done { "unmounted" } else { "no longer mounted (or covered)" }),
            Err(e) => {
                log::info!("unmount: {e}; detaching the mount instead");
                if let Err(e) = mounted.unmount(true) {
                    log::error!("cannot unmount {path}: {e}");
                }
            }
        }
    }
    if let Ok(signal) = stop.wait() {
        log::warn!("{signal} again: exiting now");
        std::process::exit(1);
    }
}
