//! Hosts as Linux network namespaces, made and removed by the test itself: one "switch"
//! namespace holding a bridge, and one namespace per host, each linked to the bridge by a
//! veth pair, with an address used only inside these namespaces. A partition is the switch
//! side of a host's link brought down. Nothing here touches the machine's own interfaces.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The subnet of the test's hosts (inside the namespaces only).
pub const SUBNET: &str = "10.231.7";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces of one test; removed (with every process in them) when dropped.
pub struct Hosts {
    prefix: String,
    /// Host name → (namespace, its link's name on the switch, its address).
    hosts: Vec<(String, String, String, String)>,
}

impl Hosts {
    /// Makes the switch and one namespace per `(name, last octet)`; `Err` says why
    /// namespaces cannot be made here.
    pub fn make(hosts: &[(&str, u8)]) -> Result<Self, String> {
        let prefix = format!("lt{}", std::process::id());
        let mut made = Self {
            prefix: prefix.clone(),
            hosts: Vec::new(),
        };
        let sw = made.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, (name, octet)) in hosts.iter().enumerate() {
            let ns = format!("{prefix}-{name}");
            let link = format!("h{i}");
            let address = format!("{SUBNET}.{octet}");
            ip(&["netns", "add", &ns])?;
            made.hosts
                .push((name.to_string(), ns.clone(), link.clone(), address.clone()));
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &sw, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &link, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &link, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(made)
    }

    pub fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    fn find(&self, name: &str) -> &(String, String, String, String) {
        self.hosts
            .iter()
            .find(|h| h.0 == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> String {
        self.find(name).1.clone()
    }

    pub fn address(&self, name: &str) -> String {
        self.find(name).3.clone()
    }

    /// Brings host `name`'s link up or down (on the switch's side).
    pub fn link(&self, name: &str, up: bool) {
        let link = &self.find(name).2;
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            link,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// Runs `program args…` in host `name`'s namespace, in a process group of its own
    /// (stopped with the group when the returned guard is dropped), its output into `log`.
    pub fn spawn(
        &self,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Group {
        let out = || match log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(name), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Group(cmd.spawn().unwrap())
    }

    /// Runs `program args…` in host `name`'s namespace to its end: success and output.
    pub fn run(&self, name: &str, program: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(name), program])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Runs `f` on a thread whose network is host `name`'s (`setns`), with a runtime of its
    /// own: every connection it makes starts from that host.
    pub fn thread<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.ns(name));
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let mut all: Vec<String> = self.hosts.iter().map(|h| h.1.clone()).collect();
        all.push(self.switch());
        for ns in &all {
            // Whatever still runs in a host stops with it.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A process group started in a namespace: TERM, then KILL after 10 s, when dropped.
pub struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Every frame crossing the switch, captured with a packet socket in its namespace (both
/// directions of every host's link), kept in memory to be searched.
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// At most this much is kept (the test's traffic is far less).
const CAPTURE_LIMIT: usize = 1 << 30;

impl Capture {
    pub fn start(switch_ns: &str) -> Self {
        let path = format!("/var/run/netns/{switch_ns}");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (stop.clone(), frames.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // SAFETY: plain system calls on a socket this thread owns; the buffer outlives
            // each recv.
            unsafe {
                let fd = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                );
                assert!(
                    fd >= 0,
                    "a packet socket: {}",
                    std::io::Error::last_os_error()
                );
                let timeout = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 200_000,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &timeout as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                ready_tx.send(()).unwrap();
                let mut buf = vec![0u8; 65536];
                while !s.load(Ordering::Relaxed) {
                    let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                    if n > 0 {
                        let mut all = f.lock().unwrap();
                        if all.len() < CAPTURE_LIMIT {
                            all.extend_from_slice(&buf[..n as usize]);
                        }
                    }
                }
                libc::close(fd);
            }
        });
        ready_rx.recv().unwrap();
        Self {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    /// Stops capturing; returns every byte captured.
    pub fn finish(mut self) -> Vec<u8> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.frames.lock().unwrap())
    }

    /// Bytes captured so far.
    pub fn len(&self) -> usize {
        self.frames.lock().unwrap().len()
    }

    /// Whether `needle` was seen so far.
    pub fn contains(&self, needle: &[u8]) -> bool {
        find(&self.frames.lock().unwrap(), needle)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
