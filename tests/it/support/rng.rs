//! A small deterministic generator for the randomized tests: each prints its seed, and the
//! seed given back in the environment variable it names replays the same run.

pub struct Lcg(u64);

impl Lcg {
    /// Seeded from `var` when it holds a number, else from the clock; says which on stderr.
    pub fn from_env(var: &str, what: &str) -> Lcg {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64);
        eprintln!("{what} seed: {seed} ({var}={seed} replays it)");
        Lcg(seed)
    }

    pub fn next_below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.next_below(len as u64) as usize
    }
}
