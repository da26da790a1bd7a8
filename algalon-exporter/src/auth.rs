//! HTTP basic auth against bcrypt hashes, as the exporter-toolkit does it.
//!
//! * An unknown user name is verified against a dummy hash of the same cost,
//!   so the response time does not tell which user names exist; user names
//!   are compared in constant time, every configured user each time.
//! * bcrypt runs on the blocking pool, at most one per core at a time, so
//!   a burst of bad passwords cannot starve the scrape path. At most
//!   `QUEUE_LIMIT` checks are in progress; beyond that a request is answered
//!   503 at once instead of holding its connection while it queues. A check
//!   that waits `QUEUE_WAIT` for a core without getting one is answered 503
//!   too, so on a slow or busy machine the wait stays bounded in time, not
//!   only in count.
//! * A successful (user, password) is remembered as a salted SHA-256 digest
//!   — never the password itself — so a scraper does not pay a full bcrypt
//!   per scrape. The cache belongs to one loaded config: a reload that
//!   changes a hash starts from empty.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Most remembered successful logins before the cache is cleared.
const CACHE_LIMIT: usize = 1024;

/// bcrypt costs above this take seconds per request; refuse them up front.
const MAX_COST: u32 = 16;

/// Most bcrypt verifications in progress at once (waiting for a core or
/// running on one).
const QUEUE_LIMIT: usize = 64;

/// Longest a bcrypt verification waits for a core before the request is
/// answered 503 instead.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The outcome of checking an `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials.
    Allowed,
    /// Missing, malformed or wrong credentials.
    Denied,
    /// Too many checks already waiting; try again later.
    Busy,
}

/// Checked basic-auth users.
pub struct BasicAuth {
    /// (salted digest of the user name, bcrypt hash), for constant-time lookup.
    users: Vec<([u8; 32], String)>,
    names: Vec<String>,
    dummy: String,
    salt: [u8; 32],
    cache: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slots: Arc<Semaphore>,
    queue: Semaphore,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.names)
            .finish_non_exhaustive()
    }
}

/// The cost of a bcrypt hash (`$2y$10$…` → 10), or why it is not one.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: Vec<&str> = hash.split('$').collect();
    let [empty, variant, cost, rest] = parts.as_slice() else {
        return Err(
            "not a bcrypt hash (expected $2y$COST$…, e.g. from `htpasswd -nBC 10 USER`)".into(),
        );
    };
    if !empty.is_empty() || !matches!(*variant, "2a" | "2b" | "2x" | "2y") || rest.len() != 53 {
        return Err(
            "not a bcrypt hash (expected $2y$COST$…, e.g. from `htpasswd -nBC 10 USER`)".into(),
        );
    }
    let cost: u32 = cost
        .parse()
        .map_err(|_| format!("bcrypt cost {cost:?} is not a number"))?;
    if !(4..=MAX_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside 4..={MAX_COST} (each request would wait on it); \
             re-hash with cost 10-12"
        ));
    }
    Ok(cost)
}

impl BasicAuth {
    /// Checks every hash; on error returns the user and what is wrong.
    pub fn new(users: &BTreeMap<String, String>) -> Result<BasicAuth, (String, String)> {
        let mut cost = 4;
        for (user, hash) in users {
            if user.contains(':') {
                return Err((user.clone(), "a user name cannot contain ':'".into()));
            }
            cost = cost.max(bcrypt_cost(hash).map_err(|m| (user.clone(), m))?);
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| {
            (
                String::new(),
                format!("no randomness for the auth cache: {e}"),
            )
        })?;
        let dummy = bcrypt::hash("algalon-exporter dummy password", cost)
            .map_err(|e| (String::new(), format!("cannot prepare the dummy hash: {e}")))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(BasicAuth {
            users: users
                .iter()
                .map(|(u, h)| (user_digest(&salt, u), h.clone()))
                .collect(),
            names: users.keys().cloned().collect(),
            dummy,
            salt,
            cache: Mutex::new(HashSet::new()),
            bcrypt_slots: Arc::new(Semaphore::new(cores.max(1))),
            queue: Semaphore::new(QUEUE_LIMIT),
        })
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0u8]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The hash to verify `user`'s password against: the user's own, or the
    /// dummy. Every configured user is compared, each in constant time, so
    /// the time taken does not depend on which (if any) matches.
    fn hash_for(&self, user: &str) -> (&str, bool) {
        let wanted = user_digest(&self.salt, user);
        let mut found: Option<&str> = None;
        for (digest, hash) in &self.users {
            if constant_time_eq(digest, &wanted) {
                found = Some(hash);
            }
        }
        match found {
            Some(hash) => (hash, true),
            None => (&self.dummy, false),
        }
    }

    /// Whether an `Authorization` header value carries valid credentials.
    pub async fn check(self: &Arc<Self>, header: Option<&[u8]>) -> Verdict {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let key = self.digest(&user, &password);
        if self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Verdict::Allowed;
        }
        let (hash, known) = self.hash_for(&user);
        let hash = hash.to_owned();
        // Known or not, a check that would queue behind too many others is
        // turned away the same way.
        let Ok(_queued) = self.queue.try_acquire() else {
            return Verdict::Busy;
        };
        let slot =
            tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.bcrypt_slots).acquire_owned()).await;
        let slot = match slot {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Verdict::Denied,
            Err(_) => return Verdict::Busy,
        };
        // The slot moves into the blocking task: a request that times out
        // does not free it before the hash is actually done.
        let verified = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            bcrypt::verify(password, &hash)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
        if !(verified && known) {
            return Verdict::Denied;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key);
        Verdict::Allowed
    }
}

/// A fixed-size, salted stand-in for a user name, so that names of any
/// length compare in the same time.
fn user_digest(salt: &[u8; 32], user: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(b"user\0");
    h.update(user.as_bytes());
    h.finalize().into()
}

/// Equality of two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {token}").into_bytes()
    }

    #[test]
    fn parses_basic_header() {
        assert_eq!(
            parse_basic(&header("alice", "pa:ss")),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
    }

    #[test]
    fn cost_is_read_and_bounded() {
        let h = bcrypt::hash("x", 4).expect("hash");
        assert_eq!(bcrypt_cost(&h), Ok(4));
        assert!(bcrypt_cost("plaintext").is_err());
        assert!(bcrypt_cost(&h.replacen("$04$", "$31$", 1)).is_err());
    }

    #[tokio::test]
    async fn verifies_users() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_owned(), bcrypt::hash("secret", 4).expect("hash"));
        let auth = Arc::new(BasicAuth::new(&users).expect("valid"));
        let check = |user: &str, pass: &str| {
            let auth = Arc::clone(&auth);
            let h = header(user, pass);
            async move { auth.check(Some(&h)).await }
        };
        assert_eq!(check("alice", "secret").await, Verdict::Allowed);
        // Cached the second time.
        assert_eq!(check("alice", "secret").await, Verdict::Allowed);
        assert_eq!(check("alice", "wrong").await, Verdict::Denied);
        assert_eq!(check("bob", "secret").await, Verdict::Denied);
        assert_eq!(check("alicex", "secret").await, Verdict::Denied);
        assert_eq!(check("", "secret").await, Verdict::Denied);
        assert_eq!(auth.check(None).await, Verdict::Denied);
    }

    #[test]
    fn user_lookup_finds_exactly_the_configured_names() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_owned(), bcrypt::hash("a", 4).expect("hash"));
        users.insert("bob".to_owned(), bcrypt::hash("b", 4).expect("hash"));
        let auth = BasicAuth::new(&users).expect("valid");
        assert_eq!(auth.hash_for("alice"), (users["alice"].as_str(), true));
        assert_eq!(auth.hash_for("bob"), (users["bob"].as_str(), true));
        for unknown in ["", "Alice", "alic", "alice ", "carol"] {
            assert_eq!(auth.hash_for(unknown), (auth.dummy.as_str(), false));
        }
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
