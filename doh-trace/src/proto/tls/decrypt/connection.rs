//! One TCP connection's TLS, both directions watched, decrypted with a [`KeyLog`].
//!
//! The client's ClientHello gives the client random (the key log's index), the server's
//! ServerHello the version (its `supported_versions` extension for TLS 1.3) and the suite; a
//! HelloRetryRequest (its magic random) means a second ClientHello follows.
//!
//! TLS 1.3: after the ServerHello each side's records are protected with its handshake
//! traffic secret until its Finished (the handshake messages inside the decrypted records are
//! followed to find it), then with its application traffic secret, renewed at each KeyUpdate.
//! The inner content type and padding are removed; ChangeCipherSpec records are skipped.
//! Client records that fail with the handshake key before any succeeded are 0-RTT early data
//! (its keys are not used): skipped and counted.
//!
//! TLS 1.2: the key block comes from the `CLIENT_RANDOM` master secret; each side's records
//! after its ChangeCipherSpec are protected, the first being its Finished.
//!
//! When a key is not in the key log yet (a live key log lags the connection), the records wait
//! — at most [`MAX_BUFFERED`] bytes per direction — and are tried again at the next
//! [`TlsDecryptor::feed`]. The server's application data also waits while client records
//! wait (a key log may name the server's secret first, as OpenSSL's does): plaintext comes out
//! request before response, as it went over the wire. Every way this can end is a [`DecryptStatus`]; nothing panics.

use super::{
    cipher::{OpenError, RecordKey, Suite, Version},
    handshake::{self, HandshakeReader, Message},
    keylog::{KeyLog, Secret},
    prf12,
    record::{self, FramingError, Header, RecordReader},
    schedule,
};
use crate::proto::tls::client_hello::{parse_client_hello, ClientHelloInfo, HelloParse};

/// Most bytes of one direction held while waiting for a key or for the other direction.
pub const MAX_BUFFERED: usize = 256 * 1024;
/// Most client records skipped as 0-RTT early data.
const MAX_EARLY_RECORDS: u32 = 64;

/// Decrypted application data of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plaintext {
    pub from_client: bool,
    pub bytes: Vec<u8>,
}

/// Where a connection's decryption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptStatus {
    /// The bytes are not TLS (final).
    NotTls,
    /// The handshake has not reached encrypted records yet.
    WaitingForHandshake,
    /// The key log has no secret for this connection (yet: a later `feed` retries, until
    /// [`MAX_BUFFERED`] bytes wait; then final).
    NoKey,
    /// The server chose a suite (or a version before TLS 1.2) not decrypted here (final).
    UnsupportedCipher(u16),
    /// The connection was seen from the middle: no ClientHello or ServerHello (final).
    MissingHandshake,
    /// Records are being decrypted.
    Decrypting,
    /// Decryption stopped (final).
    Failed(FailReason),
}

/// Why decryption stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// A record header that is not TLS or too long, after the connection was seen to be TLS.
    Framing,
    /// A handshake message that could not be parsed or is out of place.
    Handshake,
    /// A record's tag did not verify (wrong key or altered bytes).
    Decrypt,
    /// A TLS 1.3 record whose inner plaintext is all padding.
    InnerPlaintext,
    /// A key log secret whose length does not fit the suite.
    BadSecret,
    /// The connection ended inside a record ([`TlsDecryptor::close`]).
    Truncated,
}

impl DecryptStatus {
    /// A short name for counters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecryptStatus::NotTls => "not_tls",
            DecryptStatus::WaitingForHandshake => "waiting_for_handshake",
            DecryptStatus::NoKey => "no_key",
            DecryptStatus::UnsupportedCipher(_) => "unsupported_cipher",
            DecryptStatus::MissingHandshake => "missing_handshake",
            DecryptStatus::Decrypting => "decrypting",
            DecryptStatus::Failed(reason) => reason.as_str(),
        }
    }
}

impl FailReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailReason::Framing => "failed_framing",
            FailReason::Handshake => "failed_handshake",
            FailReason::Decrypt => "failed_decrypt",
            FailReason::InnerPlaintext => "failed_inner_plaintext",
            FailReason::BadSecret => "failed_bad_secret",
            FailReason::Truncated => "failed_truncated",
        }
    }
}

/// Counts of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecryptCounters {
    /// Records read, both directions.
    pub records: u64,
    /// Records decrypted.
    pub decrypted_records: u64,
    /// Application data bytes handed out.
    pub plaintext_bytes: u64,
    /// Alerts seen (plain or decrypted).
    pub alerts: u64,
    /// TLS 1.3 KeyUpdates followed.
    pub key_updates: u64,
    /// Client records skipped as 0-RTT early data.
    pub early_data_skipped: u64,
    /// Bytes dropped: fed after a final status, or over [`MAX_BUFFERED`].
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Plaintext records: the hellos (and TLS 1.2's whole handshake).
    Plain,
    /// TLS 1.3, protected with the handshake traffic secret.
    Handshake13,
    /// TLS 1.3, protected with the application traffic secret.
    Application13,
    /// TLS 1.2, after this side's ChangeCipherSpec.
    Encrypted12,
}

#[derive(Debug)]
struct Side {
    records: RecordReader,
    handshake: HandshakeReader,
    phase: Phase,
    key: Option<RecordKey>,
    /// The TLS 1.3 traffic secret `key` came from (for KeyUpdate).
    secret: Option<Secret>,
    records_seen: u64,
    decrypted: u64,
    early_skipped: u32,
    blocked: Option<DecryptStatus>,
}

impl Side {
    fn new() -> Side {
        Side {
            records: RecordReader::default(),
            handshake: HandshakeReader::default(),
            phase: Phase::Plain,
            key: None,
            secret: None,
            records_seen: 0,
            decrypted: 0,
            early_skipped: 0,
            blocked: None,
        }
    }
}

/// What handling a record did.
enum Step {
    Consumed,
    /// The record must wait (for a key or for the other direction).
    Blocked(DecryptStatus),
    /// Try the same record again (the phase changed).
    Again,
}

/// Decrypts one TCP connection's TLS, fed both directions' bytes in order.
#[derive(Debug)]
pub struct TlsDecryptor {
    client: Side,
    server: Side,
    final_status: Option<DecryptStatus>,
    client_random: Option<[u8; 32]>,
    client_session_id: Vec<u8>,
    client_hello: Option<ClientHelloInfo>,
    hello_retry: bool,
    /// The ServerHello (not a HelloRetryRequest) has been read.
    server_hello: bool,
    server_random: [u8; 32],
    suite: Option<Suite>,
    alpn: Option<String>,
    resumed: bool,
    counters: DecryptCounters,
}

impl Default for TlsDecryptor {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsDecryptor {
    pub fn new() -> TlsDecryptor {
        TlsDecryptor {
            client: Side::new(),
            server: Side::new(),
            final_status: None,
            client_random: None,
            client_session_id: Vec::new(),
            client_hello: None,
            hello_retry: false,
            server_hello: false,
            server_random: [0; 32],
            suite: None,
            alpn: None,
            resumed: false,
            counters: DecryptCounters::default(),
        }
    }

    /// Heap bytes held: both directions' records and handshake messages waiting.
    pub fn held_bytes(&self) -> usize {
        let side = |s: &Side| s.records.held_bytes() + s.handshake.held_bytes();
        side(&self.client) + side(&self.server) + self.client_session_id.capacity()
    }

    /// Takes the next bytes of one direction and appends the application data decrypted
    /// from them (and from earlier bytes whose key has arrived in `keys` since) to `out`, in
    /// order; consecutive data of one direction is joined into one [`Plaintext`].
    pub fn feed(
        &mut self,
        from_client: bool,
        bytes: &[u8],
        keys: &KeyLog,
        out: &mut Vec<Plaintext>,
    ) {
        if self.final_status.is_some() {
            self.counters.dropped_bytes += bytes.len() as u64;
            return;
        }
        self.side_mut(from_client).records.push(bytes);
        let start = out.len();
        // One record's copy, decrypted in place; one buffer for this call's records (not kept
        // between calls: a connection waiting for bytes holds no more than its partial record).
        let mut scratch = Vec::new();
        loop {
            let a = self.pump(true, keys, out, start, &mut scratch);
            let b = self.pump(false, keys, out, start, &mut scratch);
            if self.final_status.is_some() || !(a || b) {
                break;
            }
        }
        if self.final_status.is_none() {
            self.check_buffers();
        }
        self.client.records.compact();
        self.server.records.compact();
        if self.final_status.is_some() {
            let dropped = self.client.records.buffered() + self.server.records.buffered();
            self.counters.dropped_bytes += dropped as u64;
            self.client.records.clear();
            self.server.records.clear();
        }
    }

    /// The end of both directions: bytes left inside a record make decryption
    /// [`FailReason::Truncated`] (unless it already ended otherwise).
    pub fn close(&mut self) {
        if self.final_status.is_none()
            && self.client.records.buffered() + self.server.records.buffered() > 0
            && self.status() == DecryptStatus::Decrypting
        {
            self.final_status = Some(DecryptStatus::Failed(FailReason::Truncated));
        }
    }

    pub fn status(&self) -> DecryptStatus {
        if let Some(status) = self.final_status {
            return status;
        }
        let blocked = [self.client.blocked, self.server.blocked];
        for wanted in [DecryptStatus::NoKey, DecryptStatus::MissingHandshake] {
            if blocked.contains(&Some(wanted)) {
                return wanted;
            }
        }
        if self.client.decrypted + self.server.decrypted > 0 {
            DecryptStatus::Decrypting
        } else {
            DecryptStatus::WaitingForHandshake
        }
    }

    /// The ClientHello's random, once it has been read.
    pub fn client_random(&self) -> Option<&[u8; 32]> {
        self.client_random.as_ref()
    }

    /// The server name and offered ALPN of the ClientHello.
    pub fn client_hello(&self) -> Option<&ClientHelloInfo> {
        self.client_hello.as_ref()
    }

    pub fn sni(&self) -> Option<&str> {
        self.client_hello.as_ref()?.server_name.as_deref()
    }

    /// The ALPN protocol the server chose (TLS 1.2: ServerHello; TLS 1.3: EncryptedExtensions,
    /// so only once decrypted).
    pub fn alpn(&self) -> Option<&str> {
        self.alpn.as_deref()
    }

    pub fn version(&self) -> Option<Version> {
        self.suite.map(|s| s.version)
    }

    /// The cipher suite chosen, if decrypted here.
    pub fn cipher_suite(&self) -> Option<u16> {
        self.suite.map(|s| s.id)
    }

    /// A HelloRetryRequest was seen.
    pub fn hello_retry(&self) -> bool {
        self.hello_retry
    }

    /// The session was resumed (TLS 1.3: a pre-shared key; TLS 1.2: the server echoed the
    /// client's session id).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn counters(&self) -> &DecryptCounters {
        &self.counters
    }

    /// Where each side stood, for a line about a connection that could not be decrypted
    /// (record counts and phases; never a byte of the connection).
    pub fn progress(&self) -> String {
        let side = |name: &str, s: &Side| {
            format!(
                "{name} {:?}: {} records, {} decrypted, {} bytes waiting{}",
                s.phase,
                s.records_seen,
                s.decrypted,
                s.records.buffered(),
                match s.blocked {
                    Some(b) => format!(", waiting: {}", b.as_str()),
                    None => String::new(),
                }
            )
        };
        format!(
            "{}; {}; {} alerts, {} early records skipped",
            side("client", &self.client),
            side("server", &self.server),
            self.counters.alerts,
            self.counters.early_data_skipped
        )
    }

    fn side_mut(&mut self, client: bool) -> &mut Side {
        if client {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    fn fail(&mut self, status: DecryptStatus) {
        if self.final_status.is_none() {
            self.final_status = Some(status);
        }
    }

    fn check_buffers(&mut self) {
        for client in [true, false] {
            let side = self.side_mut(client);
            if side.records.buffered() > MAX_BUFFERED {
                let status = match side.blocked {
                    Some(DecryptStatus::NoKey) => DecryptStatus::NoKey,
                    _ => DecryptStatus::MissingHandshake,
                };
                self.fail(status);
            }
        }
    }

    /// Handles the whole records of one side; returns whether any was consumed.
    fn pump(
        &mut self,
        client: bool,
        keys: &KeyLog,
        out: &mut Vec<Plaintext>,
        start: usize,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let mut progress = false;
        while self.final_status.is_none() {
            let side = if client { &self.client } else { &self.server };
            let header = match side.records.peek() {
                Ok(Some((header, fragment))) => {
                    scratch.clear();
                    scratch.extend_from_slice(fragment);
                    header
                }
                Ok(None) => break,
                Err(FramingError::ContentType | FramingError::Version | FramingError::TooLong) => {
                    let status = if side.records_seen == 0 {
                        DecryptStatus::NotTls
                    } else {
                        DecryptStatus::Failed(FailReason::Framing)
                    };
                    self.fail(status);
                    break;
                }
            };
            let step = self.record(client, header, scratch, keys, out, start);
            let side = self.side_mut(client);
            match step {
                Step::Consumed => {
                    side.records.consume(&header);
                    side.records_seen += 1;
                    side.blocked = None;
                    self.counters.records += 1;
                    progress = true;
                }
                Step::Again => {}
                Step::Blocked(status) => {
                    side.blocked = Some(status);
                    break;
                }
            }
        }
        progress
    }

    fn record(
        &mut self,
        client: bool,
        header: Header,
        fragment: &mut [u8],
        keys: &KeyLog,
        out: &mut Vec<Plaintext>,
        start: usize,
    ) -> Step {
        let side = self.side_mut(client);
        let first = side.records_seen == 0;
        let phase = side.phase;
        let version = self.suite.map(|s| s.version);
        match (phase, header.content_type) {
            (_, record::ALERT) if phase != Phase::Encrypted12 || header.len == 2 => {
                // A plaintext alert (also allowed once encrypted, when the peer cannot
                // decrypt): counted.
                if first && client {
                    self.fail(DecryptStatus::NotTls);
                }
                self.counters.alerts += 1;
                Step::Consumed
            }
            (Phase::Plain, record::HANDSHAKE) => {
                self.plain_handshake(client, fragment);
                Step::Consumed
            }
            (Phase::Plain, _) if first => {
                self.fail(if header.content_type == record::APPLICATION_DATA {
                    DecryptStatus::MissingHandshake
                } else if client {
                    DecryptStatus::NotTls
                } else {
                    DecryptStatus::MissingHandshake
                });
                Step::Consumed
            }
            (Phase::Plain, record::CHANGE_CIPHER_SPEC) => match version {
                None if client => Step::Blocked(DecryptStatus::WaitingForHandshake),
                None | Some(Version::Tls13) => Step::Consumed,
                Some(Version::Tls12) => {
                    self.side_mut(client).phase = Phase::Encrypted12;
                    Step::Consumed
                }
            },
            (Phase::Plain, record::APPLICATION_DATA) => match version {
                Some(Version::Tls13) if self.server_hello => {
                    self.side_mut(client).phase = Phase::Handshake13;
                    Step::Again
                }
                None | Some(Version::Tls13) if client => {
                    Step::Blocked(DecryptStatus::WaitingForHandshake)
                }
                None | Some(Version::Tls13) => {
                    self.fail(DecryptStatus::MissingHandshake);
                    Step::Consumed
                }
                Some(Version::Tls12) => {
                    self.fail(DecryptStatus::Failed(FailReason::Handshake));
                    Step::Consumed
                }
            },
            (_, record::CHANGE_CIPHER_SPEC) => Step::Consumed,
            (Phase::Handshake13 | Phase::Application13, record::HANDSHAKE) => {
                self.fail(DecryptStatus::Failed(FailReason::Handshake));
                Step::Consumed
            }
            // The server's application data waits while the client has records it could not
            // open yet (their key has not come): those came first, and a response must not
            // reach the decoders before its request.
            (Phase::Application13 | Phase::Encrypted12, _)
                if !client && self.client.blocked.is_some() =>
            {
                Step::Blocked(self.client.blocked.unwrap_or(DecryptStatus::NoKey))
            }
            (_, _) => self.encrypted(client, header, fragment, keys, out, start),
        }
    }

    /// A plaintext handshake record: the hellos.
    fn plain_handshake(&mut self, client: bool, fragment: &[u8]) {
        let mut messages = Vec::new();
        if self
            .side_mut(client)
            .handshake
            .push(fragment, &mut messages)
            .is_err()
        {
            self.fail(DecryptStatus::Failed(FailReason::Handshake));
            return;
        }
        let first = self.side_mut(client).records_seen == 0;
        for (i, message) in messages.iter().enumerate() {
            let ok = match (client, message.msg_type) {
                (true, handshake::CLIENT_HELLO) => self.on_client_hello(message),
                (false, handshake::SERVER_HELLO) => self.on_server_hello(message),
                // The first handshake message of either side must be its hello.
                (_, _) if first && i == 0 => {
                    self.fail(if client {
                        DecryptStatus::NotTls
                    } else {
                        DecryptStatus::MissingHandshake
                    });
                    return;
                }
                _ => true,
            };
            if !ok {
                self.fail(DecryptStatus::Failed(FailReason::Handshake));
                return;
            }
        }
    }

    fn on_client_hello(&mut self, message: &Message) -> bool {
        let Ok(hello) = handshake::parse_client_hello(&message.body) else {
            return false;
        };
        self.client_random = Some(hello.random);
        self.client_session_id = hello.session_id;
        if self.client_hello.is_none() {
            let mut whole = Vec::with_capacity(message.body.len() + 4);
            whole.push(handshake::CLIENT_HELLO);
            whole.extend_from_slice(&(message.body.len() as u32).to_be_bytes()[1..]);
            whole.extend_from_slice(&message.body);
            if let HelloParse::Complete(info) = parse_client_hello(&record::wrap_handshake(&whole))
            {
                self.client_hello = Some(info);
            }
        }
        true
    }

    fn on_server_hello(&mut self, message: &Message) -> bool {
        let Ok(hello) = handshake::parse_server_hello(&message.body) else {
            return false;
        };
        let version = match (hello.selected_version, hello.legacy_version) {
            (Some(0x0304), _) => Version::Tls13,
            (None, 0x0303) => Version::Tls12,
            _ => {
                self.fail(DecryptStatus::UnsupportedCipher(hello.cipher_suite));
                return true;
            }
        };
        let Some(suite) = Suite::find(version, hello.cipher_suite) else {
            self.fail(DecryptStatus::UnsupportedCipher(hello.cipher_suite));
            return true;
        };
        self.suite = Some(suite);
        if hello.is_hello_retry_request() {
            self.hello_retry = true;
            return true;
        }
        self.server_hello = true;
        self.server_random = hello.random;
        match version {
            Version::Tls13 => {
                self.resumed = hello.pre_shared_key;
                self.server.phase = Phase::Handshake13;
            }
            Version::Tls12 => {
                self.resumed =
                    !hello.session_id.is_empty() && hello.session_id == self.client_session_id;
                self.alpn = hello.alpn;
            }
        }
        true
    }

    /// Makes sure `client`'s side has its key for its phase.
    fn ensure_key(&mut self, client: bool, keys: &KeyLog) -> Result<(), DecryptStatus> {
        if self.side_mut(client).key.is_some() {
            return Ok(());
        }
        let Some(random) = self.client_random else {
            return Err(if client {
                DecryptStatus::MissingHandshake
            } else {
                DecryptStatus::WaitingForHandshake
            });
        };
        let Some(suite) = self.suite else {
            return Err(DecryptStatus::WaitingForHandshake);
        };
        let secrets = keys.get(&random).ok_or(DecryptStatus::NoKey)?;
        let server_random = self.server_random;
        let side = self.side_mut(client);
        let bad = DecryptStatus::Failed(FailReason::BadSecret);
        match side.phase {
            Phase::Encrypted12 => {
                let master = secrets.master_secret.ok_or(DecryptStatus::NoKey)?;
                let (c, s) = prf12::record_keys(&suite, master.as_bytes(), &random, &server_random)
                    .ok_or(bad)?;
                side.key = Some(if client { c } else { s });
            }
            Phase::Handshake13 | Phase::Application13 => {
                let secret = match (side.phase, client) {
                    (Phase::Handshake13, true) => secrets.client_handshake,
                    (Phase::Handshake13, false) => secrets.server_handshake,
                    (_, true) => secrets.client_traffic,
                    (_, false) => secrets.server_traffic,
                }
                .ok_or(DecryptStatus::NoKey)?;
                side.key = Some(schedule::record_key(&suite, &secret).ok_or(bad)?);
                side.secret = Some(secret);
            }
            Phase::Plain => return Err(DecryptStatus::WaitingForHandshake),
        }
        Ok(())
    }

    fn encrypted(
        &mut self,
        client: bool,
        header: Header,
        fragment: &mut [u8],
        keys: &KeyLog,
        out: &mut Vec<Plaintext>,
        start: usize,
    ) -> Step {
        if let Err(status) = self.ensure_key(client, keys) {
            if let DecryptStatus::Failed(_) = status {
                self.fail(status);
                return Step::Consumed;
            }
            return Step::Blocked(status);
        }
        let side = self.side_mut(client);
        let phase = side.phase;
        let Some(key) = side.key.as_mut() else {
            return Step::Blocked(DecryptStatus::NoKey);
        };
        let range = match key.open(header.bytes(), fragment) {
            Ok(range) => range,
            Err(OpenError::Auth | OpenError::TooShort)
                if client
                    && phase == Phase::Handshake13
                    && side.decrypted == 0
                    && side.early_skipped < MAX_EARLY_RECORDS =>
            {
                side.early_skipped += 1;
                self.counters.early_data_skipped += 1;
                return Step::Consumed;
            }
            Err(_) => {
                self.fail(DecryptStatus::Failed(FailReason::Decrypt));
                return Step::Consumed;
            }
        };
        side.decrypted += 1;
        self.counters.decrypted_records += 1;
        let plain = &fragment[range];
        let (content_type, content) = if phase == Phase::Encrypted12 {
            (header.content_type, plain)
        } else {
            // TLSInnerPlaintext: content, the real type, zero padding.
            match plain.iter().rposition(|&b| b != 0) {
                Some(at) => (plain[at], &plain[..at]),
                None => {
                    self.fail(DecryptStatus::Failed(FailReason::InnerPlaintext));
                    return Step::Consumed;
                }
            }
        };
        match content_type {
            record::APPLICATION_DATA if phase != Phase::Handshake13 => {
                self.counters.plaintext_bytes += content.len() as u64;
                let joinable = out.len() > start;
                match out
                    .last_mut()
                    .filter(|last| joinable && last.from_client == client)
                {
                    Some(last) => last.bytes.extend_from_slice(content),
                    None => out.push(Plaintext {
                        from_client: client,
                        bytes: content.to_vec(),
                    }),
                }
            }
            record::ALERT => self.counters.alerts += 1,
            record::HANDSHAKE => {
                let content = content.to_vec();
                self.encrypted_handshake(client, &content);
            }
            _ => {}
        }
        Step::Consumed
    }

    /// Handshake messages in decrypted records: Finished switches TLS 1.3 to the application
    /// secret, KeyUpdate renews it, EncryptedExtensions names the ALPN protocol.
    fn encrypted_handshake(&mut self, client: bool, content: &[u8]) {
        let mut messages = Vec::new();
        let suite = self.suite;
        let side = self.side_mut(client);
        if side.handshake.push(content, &mut messages).is_err() {
            self.fail(DecryptStatus::Failed(FailReason::Handshake));
            return;
        }
        for message in messages {
            let side = self.side_mut(client);
            match (side.phase, message.msg_type) {
                (Phase::Handshake13, handshake::FINISHED) => {
                    side.phase = Phase::Application13;
                    side.key = None;
                    side.secret = None;
                }
                (Phase::Handshake13, handshake::ENCRYPTED_EXTENSIONS) if !client => {
                    match handshake::encrypted_extensions_alpn(&message.body) {
                        Ok(alpn) => self.alpn = alpn,
                        Err(_) => self.fail(DecryptStatus::Failed(FailReason::Handshake)),
                    }
                }
                (Phase::Application13, handshake::KEY_UPDATE) => {
                    let (Some(suite), Some(secret)) = (suite, side.secret) else {
                        continue;
                    };
                    let next = schedule::next_traffic_secret(suite.hash, &secret);
                    let key = next.and_then(|s| schedule::record_key(&suite, &s));
                    match key {
                        Some(key) => {
                            side.key = Some(key);
                            side.secret = next;
                            self.counters.key_updates += 1;
                        }
                        None => self.fail(DecryptStatus::Failed(FailReason::BadSecret)),
                    }
                }
                _ => {}
            }
        }
    }
}
