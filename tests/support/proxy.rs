//! A fault-injecting TCP proxy for the soak tests: it sits between the tool and a server on
//! 127.0.0.1 and, as its plan says, cuts a connection, stalls it (holds the bytes of one
//! direction until a side gives up, or `stall_max` passes) or slows it, at a chosen byte of
//! either direction or at a chosen PostgreSQL statement of the client (before the server gets
//! it, or after the server ran it, when its reply arrives: the lost-reply case). Every fault is
//! recorded, so a test can count them and say what happened where.
//!
//! Plain std threads (two per connection): the tests' traffic is small, and a proxy that
//! blocks nothing but its own threads is simple to reason about.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test helper reports

use std::collections::VecDeque;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a pump looks at its flags while no bytes come.
const POLL: Duration = Duration::from_millis(50);

/// A direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close both sides at once.
    Cut,
    /// Stop forwarding this direction (bytes read and held) until a side closes or
    /// `stall_max` passes, then close both sides.
    Stall,
    /// Forward the rest in pieces split at random points, `slow_delay` apart, for a bounded
    /// total delay.
    Slow,
}

/// Where a fault fires.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// When the `offset`-th byte (from 0) of `dir` is about to be forwarded.
    Byte { dir: Dir, offset: u64 },
    /// At the client's first PostgreSQL message (simple Query or Parse) whose SQL contains
    /// `pattern`: before the server gets it, or, with `reply`, after the server got it, at the
    /// first byte of its answer (the server ran it; the client never hears).
    Statement { pattern: String, reply: bool },
}

/// A fault planned for one connection.
#[derive(Debug, Clone)]
pub struct Fault {
    pub action: Action,
    pub trigger: Trigger,
}

/// A fault that happened.
#[derive(Debug, Clone)]
pub struct Injected {
    /// The proxy's name.
    pub proxy: String,
    /// Connection number on that proxy, from 0.
    pub connection: u64,
    pub action: Action,
    pub dir: Dir,
    /// Bytes of `dir` forwarded before the fault.
    pub offset: u64,
    /// The statement it fired at (its start).
    pub statement: Option<String>,
    /// A stall: how long the bytes were held before a side closed (or `stall_max` passed).
    pub held: Option<Duration>,
    /// A stall ended by `stall_max`, not by a side giving up.
    pub stall_timed_out: bool,
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} conn {} {:?} {:?} at byte {}", self.proxy, self.connection, self.action, self.dir, self.offset)?;
        if let Some(s) = &self.statement {
            write!(f, " at statement {s:?}")?;
        }
        if let Some(h) = self.held {
            write!(f, " held {h:?}{}", if self.stall_timed_out { " (timed out)" } else { "" })?;
        }
        Ok(())
    }
}

/// A statement pattern the random plan fires at, with its chance each time the pattern is seen.
#[derive(Debug, Clone)]
pub struct StatementRule {
    pub pattern: String,
    pub probability: f64,
}

/// Seeded random faults: each connection gets one byte fault with chance `per_connection`,
/// and every matching client statement a statement fault with its rule's chance.
#[derive(Debug, Clone)]
pub struct RandomFaults {
    pub seed: u64,
    pub per_connection: f64,
    /// Byte offsets are drawn log-uniformly from 0..max_offset, so both the handshake and a
    /// large COPY get their share.
    pub max_offset: u64,
    /// Weights of cut, stall and slow among byte faults.
    pub weights: [u32; 3],
    /// Chance that a statement fault stalls rather than cuts.
    pub statement_stall: f64,
    pub statements: Vec<StatementRule>,
}

/// What the proxy does to the connections it accepts from now on.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Forward every byte.
    Pass,
    /// The n-th accepted connection gets the n-th list (then nothing).
    Script(VecDeque<Vec<Fault>>),
    /// These faults on every connection, each firing once in all: on whichever connection
    /// reaches it first (a statement, wherever the tool sends it).
    Once(Vec<Fault>),
    Random(RandomFaults),
}

/// Timing of stalls and slowdowns.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A stall not ended by a side closes both after this.
    pub stall_max: Duration,
    /// Delay between the pieces of a slowed connection.
    pub slow_delay: Duration,
    /// Total delay a slowed connection gets, after which it runs at full speed again.
    pub slow_budget: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            stall_max: Duration::from_secs(10),
            slow_delay: Duration::from_millis(5),
            slow_budget: Duration::from_millis(200),
        }
    }
}

struct Shared {
    name: String,
    plan: Mutex<Plan>,
    timing: Mutex<Timing>,
    log: Mutex<Vec<Injected>>,
    /// [`Plan::Once`]: the indexes of the faults fired.
    spent: Mutex<Vec<usize>>,
    connections: AtomicU64,
    stopped: AtomicBool,
}

/// A running proxy; stops accepting (and cuts what it carries) when dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream_port` there.
    pub fn start(name: &str, upstream_port: u16, plan: Plan) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            plan: Mutex::new(plan),
            timing: Mutex::new(Timing::default()),
            log: Mutex::new(Vec::new()),
            spent: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let accept_shared = shared.clone();
        thread::Builder::new()
            .name(format!("proxy-{name}"))
            .spawn(move || accept_loop(listener, upstream, accept_shared))
            .expect("proxy: spawn the accept thread");
        Proxy { port, shared }
    }

    /// Replaces the plan for the connections accepted from now on.
    pub fn set_plan(&self, plan: Plan) {
        self.shared.spent.lock().unwrap().clear();
        *self.shared.plan.lock().unwrap() = plan;
    }

    pub fn set_timing(&self, timing: Timing) {
        *self.shared.timing.lock().unwrap() = timing;
    }

    /// Every fault injected so far (a stall's `held` filled in once it ended).
    pub fn injected(&self) -> Vec<Injected> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        let id = shared.connections.fetch_add(1, Ordering::Relaxed);
        let once = matches!(*shared.plan.lock().unwrap(), Plan::Once(_));
        let (faults, rng, rules, statement_stall) = {
            let mut plan = shared.plan.lock().unwrap();
            match &mut *plan {
                Plan::Pass => (Vec::new(), Rng::new(id), Vec::new(), 0.0),
                Plan::Script(list) => (list.pop_front().unwrap_or_default(), Rng::new(id), Vec::new(), 0.0),
                Plan::Once(faults) => (faults.clone(), Rng::new(id), Vec::new(), 0.0),
                Plan::Random(r) => {
                    // Each connection's draws depend on the seed, the proxy and its number only.
                    let mut rng = Rng::new(r.seed ^ fnv(&shared.name) ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let mut faults = Vec::new();
                    if rng.chance(r.per_connection) {
                        let action = match rng.weighted(&r.weights) {
                            0 => Action::Cut,
                            1 => Action::Stall,
                            _ => Action::Slow,
                        };
                        let dir = if rng.chance(0.5) { Dir::Up } else { Dir::Down };
                        faults.push(Fault {
                            action,
                            trigger: Trigger::Byte { dir, offset: rng.log_uniform(r.max_offset) },
                        });
                    }
                    (faults, rng, r.statements.clone(), r.statement_stall)
                }
            }
        };
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let timing = *shared.timing.lock().unwrap();
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(POLL));
            let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        }
        let conn = Arc::new(Conn {
            id,
            shared: shared.clone(),
            client: client.try_clone().expect("proxy: clone socket"),
            server: server.try_clone().expect("proxy: clone socket"),
            cut: AtomicBool::new(false),
            faults: Mutex::new(ConnFaults {
                planned: faults.into_iter().enumerate().collect(),
                once,
                reply: None,
                rng,
                rules,
                statement_stall,
            }),
            timing,
        });
        let up = (conn.clone(), client.try_clone().expect("proxy: clone socket"), server.try_clone().expect("clone"));
        let down = (conn, server, client);
        let spawn = |name: String, (conn, src, dst): (Arc<Conn>, TcpStream, TcpStream), dir| {
            let _ = thread::Builder::new().name(name).spawn(move || pump(&conn, dir, src, dst));
        };
        spawn(format!("proxy-{}-{id}-up", shared.name), up, Dir::Up);
        spawn(format!("proxy-{}-{id}-down", shared.name), down, Dir::Down);
    }
}

struct ConnFaults {
    /// The plan's faults for this connection, with their index in the plan.
    planned: Vec<(usize, Fault)>,
    /// [`Plan::Once`]: a fault fires only if no connection fired it yet.
    once: bool,
    /// Armed by a statement fault with `reply`: fires at the next byte from the server.
    reply: Option<(Action, String)>,
    rng: Rng,
    rules: Vec<StatementRule>,
    statement_stall: f64,
}

struct Conn {
    id: u64,
    shared: Arc<Shared>,
    client: TcpStream,
    server: TcpStream,
    cut: AtomicBool,
    faults: Mutex<ConnFaults>,
    timing: Timing,
}

impl Conn {
    fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    fn record(&self, action: Action, dir: Dir, offset: u64, statement: Option<String>) -> usize {
        let mut log = self.shared.log.lock().unwrap();
        log.push(Injected {
            proxy: self.shared.name.clone(),
            connection: self.id,
            action,
            dir,
            offset,
            statement,
            held: None,
            stall_timed_out: false,
        });
        log.len() - 1
    }

    /// The byte fault of `dir` due within `[offset, offset + len)`: its position in that span.
    fn byte_fault(&self, dir: Dir, offset: u64, len: usize) -> Option<(usize, Action, Option<String>)> {
        let mut f = self.faults.lock().unwrap();
        if dir == Dir::Down && len > 0 {
            if let Some((action, statement)) = f.reply.take() {
                return Some((0, action, Some(statement)));
            }
        }
        loop {
            let i = f.planned.iter().position(|(_, p)| match p.trigger {
                Trigger::Byte { dir: d, offset: at } => d == dir && at < offset + len as u64,
                Trigger::Statement { .. } => false,
            })?;
            let (index, fault) = f.planned.remove(i);
            if !self.take(f.once, index) {
                continue;
            }
            let Trigger::Byte { offset: at, .. } = fault.trigger else { unreachable!() };
            return Some((at.saturating_sub(offset) as usize, fault.action, None));
        }
    }

    /// The statement fault for a client message with this SQL, if one fires: (action, reply).
    fn statement_fault(&self, sql: &str) -> Option<(Action, bool)> {
        let mut f = self.faults.lock().unwrap();
        while let Some(i) = f.planned.iter().position(|(_, p)| match &p.trigger {
            Trigger::Statement { pattern, .. } => sql.contains(pattern.as_str()),
            Trigger::Byte { .. } => false,
        }) {
            let (index, fault) = f.planned.remove(i);
            if !self.take(f.once, index) {
                continue;
            }
            let Trigger::Statement { reply, .. } = fault.trigger else { unreachable!() };
            return Some((fault.action, reply));
        }
        let chance = f.rules.iter().find(|r| sql.contains(r.pattern.as_str())).map(|r| r.probability)?;
        let stall = f.statement_stall;
        if !f.rng.chance(chance) {
            return None;
        }
        let action = if f.rng.chance(stall) { Action::Stall } else { Action::Cut };
        Some((action, f.rng.chance(0.5)))
    }

    /// Whether the plan's fault `index` may fire here (with `once`, only its first time).
    fn take(&self, once: bool, index: usize) -> bool {
        if !once {
            return true;
        }
        let mut spent = self.shared.spent.lock().unwrap();
        if spent.contains(&index) {
            return false;
        }
        spent.push(index);
        true
    }

    fn arm_reply(&self, action: Action, statement: String) {
        self.faults.lock().unwrap().reply = Some((action, statement));
    }
}

/// The first words of a statement, for the log.
fn excerpt(sql: &str) -> String {
    sql.chars().take(70).collect()
}

enum Mode {
    Pass,
    Slow { until: Instant },
    Stall { since: Instant, log: usize },
}

/// Forwards `src` to `dst` in direction `dir` until either side closes or the connection is
/// cut, applying the connection's faults of this direction.
fn pump(conn: &Conn, dir: Dir, mut src: TcpStream, mut dst: TcpStream) {
    let mut offset = 0u64;
    let mut mode = Mode::Pass;
    let mut parser = (dir == Dir::Up).then(PgParser::default);
    let mut buf = vec![0u8; 64 * 1024];
    while !conn.is_cut() {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if let Mode::Stall { since, log } = mode {
                    if since.elapsed() >= conn.timing.stall_max {
                        end_stall(conn, log, since, true);
                        break;
                    }
                }
                continue;
            }
            Err(_) => break,
        };
        if let Mode::Stall { .. } = mode {
            // Held: read so that a side closing is seen, never forwarded.
            continue;
        }
        // Up: whole protocol messages (so a statement can be stopped before its first byte).
        let units: Vec<(Vec<u8>, Option<String>)> = match &mut parser {
            Some(p) => p.feed(&buf[..n]),
            None => vec![(buf[..n].to_vec(), None)],
        };
        for (bytes, sql) in units {
            let mut reply_fault = None;
            if let Some(sql) = &sql {
                if let Some((action, reply)) = conn.statement_fault(sql) {
                    if reply {
                        reply_fault = Some((action, excerpt(sql)));
                    } else {
                        let log = conn.record(action, dir, offset, Some(excerpt(sql)));
                        match start(conn, action, log) {
                            None => return,
                            Some(m @ Mode::Stall { .. }) => {
                                mode = m;
                                break;
                            }
                            Some(m) => mode = m,
                        }
                    }
                }
            }
            match forward(conn, dir, &mut dst, &bytes, &mut offset, &mut mode) {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => {
                    conn.cut();
                    return;
                }
            }
            if let Some((action, statement)) = reply_fault {
                conn.arm_reply(action, statement);
            }
        }
    }
    if let Mode::Stall { since, log } = mode {
        end_stall(conn, log, since, false);
    }
    // One side closed (or the connection was cut): close the other too.
    conn.cut();
}

/// Starts `action`: None when the connection was cut, else the mode to go on in.
fn start(conn: &Conn, action: Action, log: usize) -> Option<Mode> {
    match action {
        Action::Cut => {
            conn.cut();
            None
        }
        Action::Stall => Some(Mode::Stall { since: Instant::now(), log }),
        Action::Slow => Some(Mode::Slow { until: Instant::now() + conn.timing.slow_budget }),
    }
}

fn end_stall(conn: &Conn, log: usize, since: Instant, timed_out: bool) {
    let mut log_entries = conn.shared.log.lock().unwrap();
    if let Some(entry) = log_entries.get_mut(log) {
        if entry.held.is_none() {
            entry.held = Some(since.elapsed());
            entry.stall_timed_out = timed_out;
        }
    }
}

/// Writes `bytes`, applying byte faults. Ok(false): the rest of this read is held (stall).
fn forward(
    conn: &Conn,
    dir: Dir,
    dst: &mut TcpStream,
    bytes: &[u8],
    offset: &mut u64,
    mode: &mut Mode,
) -> Result<bool, ()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        if let Some((at, action, statement)) = conn.byte_fault(dir, *offset, rest.len()) {
            let at = at.min(rest.len());
            write(conn, dst, &rest[..at], mode)?;
            *offset += at as u64;
            rest = &rest[at..];
            let log = conn.record(action, dir, *offset, statement);
            match start(conn, action, log) {
                None => return Err(()),
                Some(m @ Mode::Stall { .. }) => {
                    *mode = m;
                    return Ok(false);
                }
                Some(m) => *mode = m,
            }
            continue;
        }
        write(conn, dst, rest, mode)?;
        *offset += rest.len() as u64;
        rest = &[];
    }
    Ok(true)
}

fn write(conn: &Conn, dst: &mut TcpStream, bytes: &[u8], mode: &mut Mode) -> Result<(), ()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if let Mode::Slow { until } = *mode {
        if Instant::now() < until {
            // Two pieces split at a random point, a pause between: the reader gets a message
            // in parts, as a slow network delivers it.
            let split = {
                let mut f = conn.faults.lock().unwrap();
                1 + f.rng.below(bytes.len() as u64) as usize
            }
            .min(bytes.len());
            thread::sleep(conn.timing.slow_delay);
            dst.write_all(&bytes[..split]).map_err(|_| ())?;
            thread::sleep(conn.timing.slow_delay);
            return dst.write_all(&bytes[split..]).map_err(|_| ());
        }
        *mode = Mode::Pass;
    }
    dst.write_all(bytes).map_err(|_| ())
}

/// Splits the client's bytes into whole PostgreSQL protocol messages, with the SQL of simple
/// Query and Parse messages. Gives up (passes bytes through as they come) on anything it does
/// not follow, such as TLS.
#[derive(Default)]
struct PgParser {
    pending: Vec<u8>,
    /// Past the untagged startup messages (SSLRequest, StartupMessage).
    tagged: bool,
    opaque: bool,
}

impl PgParser {
    fn feed(&mut self, data: &[u8]) -> Vec<(Vec<u8>, Option<String>)> {
        if self.opaque {
            return vec![(data.to_vec(), None)];
        }
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            let header = if self.tagged { 5 } else { 4 };
            if self.pending.len() < header {
                break;
            }
            let len_at = if self.tagged { 1 } else { 0 };
            let len = u32::from_be_bytes(self.pending[len_at..len_at + 4].try_into().unwrap()) as usize;
            if len < 4 || (!self.tagged && len > 10_000) {
                // Not a protocol we follow (TLS after an accepted SSLRequest): pass the rest.
                self.opaque = true;
                out.push((std::mem::take(&mut self.pending), None));
                break;
            }
            let total = len_at + len;
            if self.pending.len() < total {
                break;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            let mut sql = None;
            if self.tagged {
                let body = &message[5..];
                sql = match message[0] {
                    b'Q' => Some(cstr(body)),
                    // Parse: statement name, then the query.
                    b'P' => {
                        let name_end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                        Some(cstr(body.get(name_end + 1..).unwrap_or_default()))
                    }
                    _ => None,
                };
            } else {
                let code = message.get(4..8).map(|c| u32::from_be_bytes(c.try_into().unwrap()));
                // SSLRequest and GSSENCRequest are answered with one byte; then another untagged
                // message (or TLS). Anything else is the startup message.
                if !matches!(code, Some(80_877_103) | Some(80_877_104)) {
                    self.tagged = true;
                }
            }
            out.push((message, sql));
        }
        out
    }
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// SplitMix64: enough randomness for a fault plan, reproducible from a seed, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `0..max`: small offsets as likely per octave as large ones.
    pub fn log_uniform(&mut self, max: u64) -> u64 {
        let v = ((max.max(2) as f64).ln() * self.unit()).exp() as u64;
        v.saturating_sub(1).min(max.saturating_sub(1))
    }

    /// An index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if pick < u64::from(w) {
                return i;
            }
            pick -= u64::from(w);
        }
        weights.len().saturating_sub(1)
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
