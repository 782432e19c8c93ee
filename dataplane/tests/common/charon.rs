//! strongSwan's charon for interop tests: started in a network namespace
//! with kernel-libipsec (its userspace ESP: this kernel's XFRM has no
//! AES-GCM) and driven through swanctl over its own VICI socket, its files
//! in a directory of its own. Included by path by the tests that need it.

use super::common::Proc;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// charon's binary.
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// The Debian packages charon and its plugins come from.
pub const PACKAGES: &str =
    "strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins";

/// charon in namespace `ns`, its files in `dir`; killed and removed on
/// drop (before the namespace goes).
pub struct Charon {
    /// Its files.
    pub dir: PathBuf,
    /// Its namespace.
    pub ns: String,
    _proc: Proc,
}

impl Drop for Charon {
    fn drop(&mut self) {
        // SIGTERM first, so that charon removes its pid file and TUN
        // device; the Proc field kills it after this if it is still there.
        // (`ip netns exec` and `env` exec, so the child is charon itself.)
        let pid = self._proc.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if matches!(self._proc.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Charon {
    /// Starts charon in `ns` with its files in `dir`.
    pub fn start(ns: &str, dir: &Path) -> Charon {
        for f in [
            CHARON,
            "/usr/sbin/swanctl",
            "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so",
            "/usr/lib/ipsec/plugins/libstrongswan-openssl.so",
            "/usr/lib/ipsec/plugins/libstrongswan-pkcs8.so",
        ] {
            assert!(
                Path::new(f).exists(),
                "{f} is missing: install {PACKAGES} (scripts/setup does)"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("charon dir");
        let vici = dir.join("charon.vici");
        std::fs::write(
            dir.join("strongswan.conf"),
            format!(
                r#"charon {{
  load = random nonce aes sha1 sha2 hmac kdf gcm openssl pem pkcs1 pkcs8 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  port = 500
  port_nat_t = 4500
  retransmit_timeout = 2.0
  retransmit_tries = 2
  install_virtual_ip = no
  filelog {{
    log {{
      path = {log}
      default = 1
      ike = 2
      chd = 2
      cfg = 1
      knl = 1
      flush_line = yes
      time_format = %H:%M:%S
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{vici}
    }}
    kernel-libipsec {{
      load = yes
    }}
  }}
}}
swanctl {{
  load = pem pkcs1 pkcs8 x509 pubkey openssl
  socket = unix://{vici}
}}
"#,
                log = dir.join("charon.log").display(),
                vici = vici.display()
            ),
        )
        .expect("strongswan.conf");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "env"])
            .arg(format!(
                "STRONGSWAN_CONF={}",
                dir.join("strongswan.conf").display()
            ))
            .arg(CHARON);
        let proc = Proc::spawn(c);
        let charon = Charon {
            dir: dir.to_path_buf(),
            ns: ns.into(),
            _proc: proc,
        };
        let t = Instant::now();
        while !vici.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "charon did not start:\n{}",
                charon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        charon
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// swanctl with `args` against this charon.
    pub fn swanctl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "env"])
            .arg(format!(
                "STRONGSWAN_CONF={}",
                self.dir.join("strongswan.conf").display()
            ))
            .arg(format!(
                "SWANCTL_DIR={}",
                self.dir.join("swanctl").display()
            ))
            .arg("swanctl")
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.dir.join("charon.vici").display()));
        c
    }

    /// Runs swanctl to its end; its stdout.
    pub fn swanctl(&self, args: &[&str]) -> String {
        let out = self.swanctl_cmd(args).output().expect("run swanctl");
        assert!(
            out.status.success(),
            "swanctl {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts swanctl (for commands that need this side to answer).
    pub fn swanctl_bg(&self, args: &[&str]) -> Child {
        self.swanctl_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start swanctl")
    }

    /// Loads the swanctl configuration `text` (connections and secrets),
    /// written where swanctl finds its credential directories (`x509`,
    /// `x509ca`, `private` beside it).
    pub fn load_conf(&self, text: &str) {
        let sw = self.dir.join("swanctl");
        std::fs::create_dir_all(&sw).expect("swanctl dir");
        let f = sw.join("swanctl.conf");
        std::fs::write(&f, text).expect("swanctl.conf");
        self.swanctl(&[
            "--load-all",
            "--noprompt",
            "--file",
            &f.display().to_string(),
        ]);
    }
}
