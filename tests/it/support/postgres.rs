//! A real, throwaway PostgreSQL cluster (Debian's PostgreSQL: `initdb` + `pg_ctl`) in a temp
//! directory, stopped when the test drops it. PostgreSQL cannot listen on a port the system
//! picks, so it listens on no TCP port at all: only on its Unix socket, in that directory
//! (`listen_addresses=''`, `-k`), which no other cluster can take. Clients reach it with
//! `?host=<directory>` in the URL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The port only names the socket file (`.s.PGSQL.5432`), in a directory of the cluster's own;
/// given everywhere, so that a `PGPORT` in the environment changes nothing.
const SOCKET_PORT: u16 = 5432;

pub struct Postgres {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("REGWARDEN_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server: these tests need Debian's postgresql (apt-get install postgresql; \
             ci/test.sh does it) or REGWARDEN_TEST_PG_BIN"
        )
    })
}

fn is_root() -> bool {
    // The uid of /proc/self is the effective uid of this process.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user.
fn run(bin: &Path, tool: &str, args: &[&str], as_postgres: bool) -> Output {
    let program = bin.join(tool);
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (the postgresql package creates it)");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let socket = dir.path().to_str().unwrap().to_string();
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "regwarden",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            as_postgres,
        );
        let options = format!(
            "-c listen_addresses='' -k {socket} -p {SOCKET_PORT} -c fsync=off -c full_page_writes=off"
        );
        let log = dir.path().join("postgres.log");
        run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
            as_postgres,
        );
        run(
            &bin,
            "createdb",
            &[
                "-h",
                &socket,
                "-p",
                &SOCKET_PORT.to_string(),
                "-U",
                "regwarden",
                "regwarden",
            ],
            as_postgres,
        );
        Postgres {
            // sqlx reads a `host` starting with `/` as the socket's directory.
            url: format!("postgres://regwarden@localhost:{SOCKET_PORT}/regwarden?host={socket}"),
            bin,
            data,
            as_postgres,
            _dir: dir,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = cmd
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
