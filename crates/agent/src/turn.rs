//! The agent's turn loop: one user message in, one stream of [`AgentEvent`]s out. Both the
//! SSE and the JSON endpoints consume this same stream.
//!
//! A turn runs in its own task and sends events into a channel. When the receiver goes away
//! (the client disconnected) or the turn is stopped, the task cancels the upstream request,
//! keeps what was generated marked as interrupted, and ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument;

use crate::Code;
use billing::{Billing, BillingError, Charge, Payer, PlannedReservation, Reservation};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use store::{Backend, MessageRole, Settlement, Store, StoredMessage, TurnStart};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::events::{AgentEvent, Phase};
use crate::follow::{copy_journal, Follow, FollowError};
use crate::journal::{Cursor, EventId, Journal, Journals};
use crate::llm::{tokens, ChatDelta, ChatMessage, ChatRequest, LlmError, ToolCall, ToolSpec};
use crate::models::{KeyOwner, ModelResolver, ResolvedModel};
use crate::{Principal, ToolContext, ToolRegistry};

/// The default system prompt.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are Integrator Agent, an expert assistant for data integration. \
You help users connect REST APIs, databases (PostgreSQL, SQLite) and files (CSV, JSON, NDJSON), build flows \
that move data between them, schedule those flows, and troubleshoot problems. Use the tools: search the \
knowledge base before answering product questions, search templates when a ready-made pipeline may fit, and \
act on the user's workspace only when asked. Answer in concise Markdown with concrete steps and commands, \
and say so plainly when you do not know.";

/// How long one replica may hold a session before it must renew its lease (a crashed
/// replica's sessions are free again after at most this long).
const SESSION_LEASE_MS: i64 = 15_000;
const EVENT_BUFFER: usize = 256;
/// How long a stop request waits for a turn on another replica to end: polls × interval.
const REMOTE_STOP_POLLS: u32 = 60;
const REMOTE_STOP_POLL: Duration = Duration::from_millis(50);
/// How long a stop waits for a turn on this server to store what it generated.
const LOCAL_STOP_WAIT: Duration = Duration::from_secs(5);
/// Completion tokens assumed when reserving money for an LLM call.
const COMPLETION_ESTIMATE: u64 = 1024;
/// The most characters of a tool's result a `tool_end` event carries.
const TOOL_RESULT_SHOWN: usize = 4_000;
/// The message of a refusal for lack of budget (the seeds' wording).
pub const CAP_EXCEEDED: &str = "AI usage cap exceeded";

/// Tunables of the turn loop.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// LLM calls per turn before the agent must answer with what it has.
    pub max_steps: u32,
    /// Stored user/assistant messages sent as context.
    pub history_limit: i64,
    /// Retries of a failed LLM call before any token reached the client.
    pub retries: u32,
    /// First retry delay; doubled on each further retry.
    pub retry_base: Duration,
    /// How long a turn's events stay available to clients that rejoin its stream after it ended.
    pub stream_retention: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            max_steps: 8,
            history_limit: 20,
            retries: 3,
            retry_base: Duration::from_millis(500),
            stream_retention: Duration::from_secs(300),
        }
    }
}

/// A message for the agent.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub principal: Principal,
    pub session_id: String,
    pub message: String,
    pub include_tools: bool,
    pub system_prompt: Option<String>,
    /// The session does not exist yet: the turn creates it (with the user message).
    pub new_session: bool,
    /// The turn goes on when the client that started it goes away (`"on_disconnect":
    /// "continue"`); by default it is cancelled.
    pub keep_running: bool,
    /// `tool_start` and `tool_end` events also carry the call's id, arguments and result
    /// (`"tool_details": true`, as the console's chat panel asks).
    pub tool_details: bool,
    /// Earlier messages the caller sends along (the OpenAI-compatible endpoint's conversation):
    /// given to the model between the system prompt and the session's stored history, not
    /// stored themselves.
    pub context: Vec<ChatMessage>,
}

/// One event of a turn with its number in the turn, serialised once.
#[derive(Debug, Clone)]
pub struct TurnEvent {
    pub seq: u64,
    pub event: AgentEvent,
    pub json: Arc<str>,
}

/// A running turn: its id, its events, and (unless it keeps running without its client) a
/// guard that cancels it when dropped.
pub struct TurnHandle {
    pub turn_id: String,
    pub events: mpsc::Receiver<TurnEvent>,
    _cancel_on_drop: Option<DropGuard>,
}

impl TurnHandle {
    /// The SSE `id` of this turn's `seq`-th event.
    pub fn event_id(&self, seq: u64) -> String {
        EventId {
            turn_id: self.turn_id.clone(),
            seq,
        }
        .render()
    }
}

/// The agent: runs turns against the store, the tools and the model.
pub struct Agent {
    store: Store,
    tools: Arc<ToolRegistry>,
    models: ModelResolver,
    billing: Arc<Billing>,
    settings: AgentSettings,
    running: Mutex<HashMap<String, RunningTurn>>,
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sessions being deleted here: a turn that gets to them meanwhile finds them gone.
    deleting: Mutex<HashSet<String>>,
    /// Every turn's task, so that a shutdown can wait for them to store their outcome.
    turns: tokio_util::task::TaskTracker,
    /// The events of the turns running here and of those that ended lately.
    journals: Journals,
}

/// The turn that holds a session on this server: how to stop it, and how to know it ended.
#[derive(Clone)]
struct RunningTurn {
    cancel: CancellationToken,
    /// Cancelled once the turn stored its outcome (or failed to).
    ended: CancellationToken,
}

/// A turn's entry in [`Agent::running`], removed (and the turn marked ended) when dropped —
/// also when the turn panics.
struct Registration<'a> {
    agent: &'a Agent,
    session_id: String,
    ended: CancellationToken,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut running = match self.agent.running.lock() {
            Ok(running) => running,
            Err(poisoned) => poisoned.into_inner(),
        };
        // One turn at a time holds a session here (the session lock outlives this entry).
        running.remove(&self.session_id);
        self.ended.cancel();
    }
}

/// Aborts a background task when dropped (the session lease's renewal ends with its turn,
/// whichever way the turn ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Emitter {
    sender: mpsc::Sender<TurnEvent>,
    cancel: CancellationToken,
    announced: AtomicBool,
    journal: Arc<Journal>,
    /// The turn goes on without the client that started it.
    keep_running: bool,
    /// That client went away (only a turn that keeps running notices).
    detached: AtomicBool,
    /// When the turn started, for its timeline (`RUST_LOG=integrator::timeline=debug`).
    started: std::time::Instant,
}

impl Emitter {
    /// Sends the `session` event, once: the first event of every turn.
    async fn announce(&self, session_id: &str) {
        if !self.announced.swap(true, Ordering::Relaxed) {
            self.send(AgentEvent::Session {
                session_id: session_id.to_string(),
            })
            .await;
        }
    }

    /// Writes an event to the turn's journal and sends it to the client that started the
    /// turn; that client going away cancels the turn, unless it keeps running.
    async fn send(&self, event: AgentEvent) {
        let json: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
        let seq = self.journal.push(json.clone(), event.is_last());
        if self.detached.load(Ordering::Relaxed) {
            return;
        }
        if self
            .sender
            .send(TurnEvent { seq, event, json })
            .await
            .is_err()
        {
            if self.keep_running {
                self.detached.store(true, Ordering::Relaxed);
            } else {
                self.cancel.cancel();
            }
        }
    }
}

impl Emitter {
    /// Marks a point of the turn's timeline: a debug event of target `integrator::timeline`
    /// with the microseconds since the turn started (nothing is formatted unless enabled).
    fn mark(&self, point: &'static str) {
        tracing::debug!(
            target: "integrator::timeline",
            turn = %self.journal.turn_id,
            at_us = self.started.elapsed().as_micros() as u64,
            point
        );
    }
}

impl Drop for Emitter {
    /// A turn that ends without its last event (cancelled before it began) still closes its
    /// journal, so that followers and the database copy finish.
    fn drop(&mut self) {
        if !self.journal.finished() {
            let end = serde_json::to_string(&AgentEvent::End).unwrap_or_default();
            self.journal.push(end.into(), true);
        }
    }
}

/// How a turn ended.
enum Outcome {
    Answered,
    Cancelled,
    Failed {
        message: String,
        retryable: bool,
        code: Option<Code>,
    },
}

impl Outcome {
    fn cap_exceeded() -> Outcome {
        Outcome::Failed {
            message: CAP_EXCEEDED.to_string(),
            retryable: false,
            code: Some(Code::CapExceeded),
        }
    }

    fn session_gone(session_id: &str) -> Outcome {
        Outcome::Failed {
            message: format!("Session {session_id} does not exist; create a new session"),
            retryable: false,
            code: Some(Code::NotFound),
        }
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed {
            message: message.to_string(),
            retryable: true,
            code: None,
        }
    }
}

impl Agent {
    /// An agent over these parts.
    pub fn new(
        store: Store,
        tools: Arc<ToolRegistry>,
        models: ModelResolver,
        billing: Arc<Billing>,
        settings: AgentSettings,
    ) -> Agent {
        let settings_retention = settings.stream_retention;
        Agent {
            store,
            tools,
            models,
            billing,
            settings,
            running: Mutex::new(HashMap::new()),
            session_locks: Mutex::new(HashMap::new()),
            deleting: Mutex::new(HashSet::new()),
            turns: tokio_util::task::TaskTracker::new(),
            journals: Journals::new(settings_retention),
        }
    }

    /// Waits (at most `grace`) for the turns in progress to end and store their outcome; new
    /// turns still start meanwhile (the listener has stopped taking requests). True when all
    /// ended in time.
    pub async fn finish_turns(&self, grace: Duration) -> bool {
        self.turns.close();
        tokio::time::timeout(grace, self.turns.wait()).await.is_ok()
    }

    /// Starts a turn in its own task and returns its event stream.
    pub fn start(self: &Arc<Self>, request: TurnRequest) -> TurnHandle {
        let (sender, events) = mpsc::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        let journal = self.journals.open(&request.session_id);
        if self.store.backend() == Backend::Postgres {
            // Other replicas replay the turn from the database.
            let (store, journal, retention) = (
                self.store.clone(),
                journal.clone(),
                self.journals.retention(),
            );
            self.turns
                .spawn(async move { copy_journal(store, journal, retention).await });
        }
        let keep_running = request.keep_running;
        let emitter = Emitter {
            sender,
            cancel: cancel.clone(),
            announced: AtomicBool::new(false),
            journal: journal.clone(),
            keep_running,
            detached: AtomicBool::new(false),
            started: std::time::Instant::now(),
        };
        let agent = self.clone();
        // A child of the request that started it (for traces), living as long as the turn.
        let span = tracing::info_span!(
            "agent turn",
            turn_id = %journal.turn_id,
            session_id = %request.session_id,
            tenant = %request.principal.tenant_name
        );
        self.turns
            .spawn(async move { agent.run(request, emitter).await }.instrument(span));
        TurnHandle {
            turn_id: journal.turn_id.clone(),
            events,
            _cancel_on_drop: (!keep_running).then(|| cancel.drop_guard()),
        }
    }

    /// Replays a turn's events after `cursor`, then follows it live until its last event:
    /// the session's running turn or its latest (or the one the cursor names), from this
    /// server's memory or — the turn ran on another replica — from the database.
    pub async fn follow(&self, session_id: &str, cursor: &Cursor) -> Result<Follow, FollowError> {
        if let Some(journal) = self.journals.find(session_id, cursor.turn_id.as_deref()) {
            return Ok(Follow::local(journal, cursor.after));
        }
        if self.store.backend() != Backend::Postgres {
            return Err(FollowError::NoTurn);
        }
        // A turn that has just begun on another replica is in the database after its first
        // batch: while the session is busy and no unfinished turn is there, wait a moment.
        let deadline = tokio::time::Instant::now() + crate::follow::FIRST_COPY_WAIT;
        loop {
            let stored = self
                .store
                .stored_turn(session_id, cursor.turn_id.as_deref())
                .await?;
            let waiting = cursor.turn_id.is_none()
                && stored.as_ref().is_none_or(|turn| turn.finished)
                && tokio::time::Instant::now() < deadline
                && self.store.session_busy(session_id).await?;
            if !waiting {
                return match stored {
                    Some(stored) => Ok(Follow::stored(self.store.clone(), stored, cursor.after)),
                    None => Err(FollowError::NoTurn),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a turn is running in the session, here or on another replica.
    pub async fn turn_running(&self, session_id: &str) -> Result<bool, store::StoreError> {
        match self.journals.find(session_id, None) {
            Some(journal) => Ok(!journal.finished()),
            None => self.store.session_busy(session_id).await,
        }
    }

    /// How long a turn's events stay available after it ended.
    pub fn stream_retention(&self) -> Duration {
        self.journals.retention()
    }

    /// Forgets the turn events kept in the database past their time (PostgreSQL), for as
    /// long as the server runs.
    pub async fn forget_old_turn_events(self: Arc<Self>) {
        if self.store.backend() != Backend::Postgres {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.store.delete_expired_turns().await {
                tracing::warn!(error = %e, "could not forget old turn events; retrying");
            }
        }
    }

    /// Stops the turn running in a session on this server; `None` when none runs, else a
    /// token cancelled once the stopped turn has stored what it generated.
    fn stop_here(&self, session_id: &str) -> Option<CancellationToken> {
        let turn = self
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(session_id).cloned())?;
        turn.cancel.cancel();
        Some(turn.ended)
    }

    /// Stops the turn running in a session, on this server or — asked through the database —
    /// on another replica; true when one was running. Either way the stopped turn is given a
    /// moment to store what it generated, so that the session's messages read next include it.
    pub async fn stop_anywhere(&self, session_id: &str) -> Result<bool, store::StoreError> {
        let here = self.stop_here(session_id);
        if let Some(ended) = &here {
            if tokio::time::timeout(LOCAL_STOP_WAIT, ended.cancelled())
                .await
                .is_err()
            {
                tracing::warn!(session_id, "a stopped turn did not end in time");
            }
        }
        if self.store.backend() != Backend::Postgres || !self.store.session_busy(session_id).await?
        {
            return Ok(here.is_some());
        }
        self.store.request_stop(session_id).await?;
        for _ in 0..REMOTE_STOP_POLLS {
            tokio::time::sleep(REMOTE_STOP_POLL).await;
            if !self.store.session_busy(session_id).await? {
                break;
            }
        }
        Ok(true)
    }

    /// Deletes a session of `user_id`: stops the turn running in it first, and the messages
    /// waiting for it on this server are answered as for a missing session (on other
    /// replicas they find it gone when they start).
    pub async fn delete_session(
        &self,
        session_id: &str,
        user_id: &str,
    ) -> Result<(), store::StoreError> {
        self.deleting_set().insert(session_id.to_string());
        let deleted = async {
            self.stop_anywhere(session_id).await?;
            self.store.delete_session(session_id, user_id).await?;
            self.journals.forget_session(session_id);
            Ok(())
        }
        .await;
        self.deleting_set().remove(session_id);
        deleted
    }

    fn deleting_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        match self.deleting.lock() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Stops the turns other replicas ask this one to stop, for as long as the server runs
    /// (PostgreSQL; on SQLite there are no other replicas and this returns at once).
    pub async fn follow_stop_requests(self: Arc<Self>) {
        loop {
            match self.store.stop_requests().await {
                Ok(None) => return,
                Ok(Some(mut requests)) => {
                    while let Some(session_id) = requests.next().await {
                        self.stop_here(&session_id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for stop requests; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Makes this turn the one a stop of its session reaches, until the registration drops.
    fn register(&self, session_id: &str, cancel: &CancellationToken) -> Registration<'_> {
        let turn = RunningTurn {
            cancel: cancel.clone(),
            ended: CancellationToken::new(),
        };
        if let Ok(mut running) = self.running.lock() {
            running.insert(session_id.to_string(), turn.clone());
        }
        Registration {
            agent: self,
            session_id: session_id.to_string(),
            ended: turn.ended,
        }
    }

    fn session_lock(&self, session_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.session_locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks
            .entry(session_id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    async fn run(self: Arc<Self>, request: TurnRequest, emit: Emitter) {
        emit.mark("task running");
        let session_id = request.session_id.clone();
        // A new session is announced once it exists (so its id works at once); an existing one
        // right away, before the turn may wait for the session.
        if !request.new_session {
            emit.announce(&session_id).await;
        }

        // One turn at a time per session: a local lock, then a database lease for replicas.
        let lock = self.session_lock(&session_id);
        let _local = tokio::select! {
            guard = lock.lock() => guard,
            _ = emit.cancel.cancelled() => return,
        };
        let started = std::time::Instant::now();
        // A session deleted while this message waited for it is gone.
        let outcome = if self.deleting_set().contains(&session_id) {
            Outcome::session_gone(&session_id)
        } else {
            self.converse_registered(&request, &emit).await
        };
        let label = match &outcome {
            Outcome::Answered => "answered",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed {
                code: Some(Code::CapExceeded),
                ..
            } => "cap_exceeded",
            Outcome::Failed { .. } => "failed",
        };
        metrics::counter!("agent_turns_total", "outcome" => label).increment(1);
        metrics::histogram!("agent_turn_duration_seconds", "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        if label == "cap_exceeded" {
            metrics::counter!("billing_refusals_total", "what" => "turn").increment(1);
        }
        emit.announce(&session_id).await;
        emit.mark("last event");
        match outcome {
            Outcome::Answered | Outcome::Cancelled => emit.send(AgentEvent::End).await,
            Outcome::Failed {
                message,
                retryable,
                code,
            } => {
                emit.send(AgentEvent::Error {
                    message,
                    retryable,
                    code,
                })
                .await
            }
        }
    }

    /// Runs the turn as the one a stop of its session reaches; a panic in it ends it as a
    /// failure and frees the session.
    async fn converse_registered(&self, request: &TurnRequest, emit: &Emitter) -> Outcome {
        let session_id = &request.session_id;
        let _registration = self.register(session_id, &emit.cancel);
        match AssertUnwindSafe(self.converse(request, emit))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!(session_id, "the turn failed unexpectedly (a panic)");
                if let Err(e) = self.store.release_session_lease(session_id).await {
                    tracing::warn!(error = %e, "could not release the session lease; it expires by itself");
                }
                Outcome::failed("The agent failed unexpectedly while answering. Please retry.")
            }
        }
    }

    /// Sets money aside for the first model call, takes the session's lease, stores the user
    /// message and reads the history — one transaction — waiting while a turn on another
    /// replica holds the session. `Err` when the turn must end.
    async fn begin_turn(
        &self,
        request: &TurnRequest,
        emit: &Emitter,
        first_call: PlannedReservation,
    ) -> Result<(Vec<StoredMessage>, Reservation), Outcome> {
        loop {
            let started = self
                .store
                .begin_turn(
                    &request.session_id,
                    request.new_session.then_some((
                        request.principal.tenant_id.as_str(),
                        request.principal.user_id.as_str(),
                    )),
                    &request.message,
                    SESSION_LEASE_MS,
                    self.settings.history_limit,
                    first_call.request(),
                )
                .await;
            match started {
                Ok(TurnStart::Started {
                    history,
                    reservation_id,
                }) => return Ok((history, first_call.made(reservation_id))),
                Ok(TurnStart::CapExceeded) => return Err(Outcome::cap_exceeded()),
                Ok(TurnStart::SessionGone) => {
                    return Err(Outcome::session_gone(&request.session_id))
                }
                Ok(TurnStart::SessionBusy) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not store the user message");
                    return Err(Outcome::failed(
                        "The message could not be stored; nothing was sent to the model. Please retry.",
                    ));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = emit.cancel.cancelled() => return Err(Outcome::Cancelled),
            }
        }
    }

    fn spawn_lease_renewal(&self, session_id: &str) -> AbortOnDrop {
        let store = self.store.clone();
        let session_id = session_id.to_string();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(SESSION_LEASE_MS as u64 / 3));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store
                    .renew_session_lease(&session_id, SESSION_LEASE_MS)
                    .await
                {
                    tracing::warn!(error = %e, "could not renew the session lease");
                }
            }
        }))
    }

    /// Sets the first model call's money aside, stores the user message, runs the model/tool
    /// loop, stores the answer.
    async fn converse(&self, request: &TurnRequest, emit: &Emitter) -> Outcome {
        let resolved = match self.models.resolve(&request.principal).await {
            Ok(resolved) => resolved,
            Err(e) => {
                tracing::error!(error = %e, "could not resolve the model for the request");
                return Outcome::failed(
                    "The language model settings could not be read. Please retry.",
                );
            }
        };
        let tools = self.tool_specs(request);
        let system_prompt = request
            .system_prompt
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string());
        // The first call's reservation is the cap check, made with the turn's first write: a
        // tenant with nothing left is refused before anything is stored. (The history is not
        // read yet; the estimate leaves it out.)
        let estimate = ChatRequest {
            messages: vec![
                ChatMessage::System(system_prompt.clone()),
                ChatMessage::User(request.message.clone()),
            ],
            tools: tools.clone(),
        };
        let first_call = self.billing.plan_reservation(
            &payer(request),
            &charge(
                &resolved,
                tokens::estimate_prompt(&estimate),
                COMPLETION_ESTIMATE,
            ),
            resolved.owner == KeyOwner::OwnKey,
        );
        emit.mark("first write queued");
        let (history, first_reservation) = match self.begin_turn(request, emit, first_call).await {
            Ok(started) => started,
            Err(outcome) => return outcome,
        };
        emit.mark("first write committed");
        let session_id = &request.session_id;
        let renewal = self.spawn_lease_renewal(session_id);
        // `session` and `thinking` back to back, so that a stream sends them in one write.
        emit.announce(session_id).await;
        emit.send(AgentEvent::phase(Phase::Thinking)).await;
        let mut context = vec![ChatMessage::System(system_prompt)];
        context.extend(request.context.iter().cloned());
        context.extend(history.into_iter().map(|m| match m.role {
            MessageRole::User => ChatMessage::User(m.content),
            MessageRole::Assistant => ChatMessage::Assistant {
                content: m.content,
                tool_calls: Vec::new(),
            },
        }));
        let mut answer = String::new();
        let mut final_settlement = None;
        let outcome = self
            .steps(
                request,
                emit,
                &resolved,
                &tools,
                first_reservation,
                &mut context,
                &mut answer,
                &mut final_settlement,
            )
            .await;

        drop(renewal);
        let interrupted = !matches!(outcome, Outcome::Answered);
        let stored = (!answer.is_empty() || !interrupted).then_some((answer.as_str(), interrupted));
        emit.mark("last write queued");
        let mut finished = self
            .store
            .finish_turn(session_id, stored, final_settlement.clone())
            .await;
        emit.mark("last write committed");
        if let (Err(e), Some(settlement)) = (&finished, final_settlement) {
            // The answer matters more than its ledger line: store it alone, then the cost.
            tracing::warn!(error = %e, "could not finish the turn with its usage; storing them apart");
            finished = self.store.finish_turn(session_id, stored, None).await;
            if let Err(e) = self.store.settle_usage(settlement).await {
                tracing::error!(error = %e, "could not record the call's usage");
            }
        }
        if let Err(e) = finished {
            if let Ok(false) = self.store.session_exists(session_id).await {
                // Deleted while the turn ran: nothing to store it in.
                return Outcome::session_gone(session_id);
            }
            tracing::error!(error = %e, "could not store the assistant message");
            if let Err(e) = self.store.release_session_lease(session_id).await {
                tracing::warn!(error = %e, "could not release the session lease; it expires by itself");
            }
            return Outcome::failed("The answer could not be stored. Please retry.");
        }
        outcome
    }

    /// The tools offered to the model in this turn.
    fn tool_specs(&self, request: &TurnRequest) -> Vec<ToolSpec> {
        if !request.include_tools {
            return Vec::new();
        }
        self.tools
            .list()
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name.to_string(),
                description: t.description.to_string(),
                parameters: t.parameters,
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn steps(
        &self,
        request: &TurnRequest,
        emit: &Emitter,
        model: &ResolvedModel,
        tools: &[ToolSpec],
        first_reservation: Reservation,
        context: &mut Vec<ChatMessage>,
        answer: &mut String,
        final_settlement: &mut Option<Settlement>,
    ) -> Outcome {
        let mut announced_answer = false;
        let mut reserved = Some(first_reservation);
        for step in 0..self.settings.max_steps {
            let last_step = step + 1 == self.settings.max_steps;
            let chat = ChatRequest {
                messages: context.clone(),
                tools: if last_step {
                    Vec::new()
                } else {
                    tools.to_vec()
                },
            };
            let mut attempt = 0;
            let answered_before = answer.len();
            let step_result = loop {
                let reservation = match reserved.take() {
                    Some(reservation) => reservation,
                    None => match self.reserve(request, model, &chat).await {
                        Ok(reservation) => reservation,
                        Err(error) => return error.into_outcome(),
                    },
                };
                let result = self
                    .one_call(
                        request,
                        model,
                        &chat,
                        reservation,
                        emit,
                        answer,
                        &mut announced_answer,
                        final_settlement,
                    )
                    .instrument(tracing::info_span!(
                        "model call",
                        model = model.model.model_name(),
                        attempt
                    ))
                    .await;
                match result {
                    Err(CallError::Llm(error))
                        if error.retryable()
                            && answer.is_empty()
                            && attempt < self.settings.retries =>
                    {
                        metrics::counter!("llm_retries_total", "model" => model.model.model_name().to_string())
                            .increment(1);
                        let delay = retry_delay(&error, attempt, self.settings.retry_base);
                        tracing::warn!(%error, attempt, ?delay, "retrying the language model call");
                        attempt += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => continue,
                            _ = emit.cancel.cancelled() => return Outcome::Cancelled,
                        }
                    }
                    other => break other,
                }
            };
            let calls = match step_result {
                Ok(calls) => calls,
                Err(error) => return error.into_outcome_after(answer),
            };
            if calls.is_empty() {
                return Outcome::Answered;
            }
            // What the model wrote beside its tool calls stays in its context.
            context.push(ChatMessage::Assistant {
                content: answer[answered_before..].to_string(),
                tool_calls: calls.clone(),
            });
            match self.run_tools(request, emit, &calls).await {
                Ok(results) => context.extend(results),
                Err(outcome) => return outcome,
            }
            emit.send(AgentEvent::phase(Phase::Analyzing)).await;
            // The next step's text may be the final answer: announced again when it streams.
            announced_answer = false;
        }
        Outcome::Answered
    }

    /// Sets money aside for one model call (nothing for own keys and the builtin responder).
    async fn reserve(
        &self,
        request: &TurnRequest,
        resolved: &ResolvedModel,
        chat: &ChatRequest,
    ) -> Result<Reservation, CallError> {
        let estimate = charge(resolved, tokens::estimate_prompt(chat), COMPLETION_ESTIMATE);
        self.billing
            .reserve(
                &payer(request),
                &estimate,
                resolved.owner == KeyOwner::OwnKey,
            )
            .await
            .map_err(|e| match e {
                BillingError::CapExceeded => CallError::CapExceeded,
                other => {
                    tracing::error!(error = %other, "could not reserve the call's cost");
                    CallError::Billing(
                        "The usage budget could not be checked. Please retry.".into(),
                    )
                }
            })
    }

    /// One model call on a reservation: forwards tokens as they arrive, collects tool calls,
    /// reports usage, and settles the actual cost.
    #[allow(clippy::too_many_arguments)]
    async fn one_call(
        &self,
        request: &TurnRequest,
        resolved: &ResolvedModel,
        chat: &ChatRequest,
        reservation: Reservation,
        emit: &Emitter,
        answer: &mut String,
        announced_answer: &mut bool,
        final_settlement: &mut Option<Settlement>,
    ) -> Result<Vec<ToolCall>, CallError> {
        let model = resolved.model.as_ref();
        let call_started = std::time::Instant::now();
        emit.mark("upstream request");
        let started = tokio::select! {
            stream = model.stream(chat) => stream,
            _ = emit.cancel.cancelled() => {
                self.billing.release(reservation).await;
                return Err(CallError::Cancelled);
            }
        };
        emit.mark("upstream answered");
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => {
                self.billing.release(reservation).await;
                record_call(model.model_name(), error.kind(), call_started, None);
                return Err(CallError::Llm(error));
            }
        };
        let mut calls = ToolCallAssembler::default();
        let mut usage = None;
        let mut generated = String::new();
        let mut failure = None;
        // One wait for cancellation for the whole stream (not one per chunk), checked first.
        let cancelled = emit.cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut cancelled => {
                    failure = Some(CallError::Cancelled);
                    break;
                }
                next = stream.next() => next,
            };
            match next {
                None => break,
                Some(Err(error)) => {
                    failure = Some(CallError::Llm(error));
                    break;
                }
                Some(Ok(ChatDelta::Content(text))) => {
                    if !*announced_answer && calls.is_empty() {
                        *announced_answer = true;
                        emit.send(AgentEvent::phase(Phase::Preparing)).await;
                    }
                    answer.push_str(&text);
                    if generated.is_empty() {
                        emit.mark("first token");
                    }
                    generated.push_str(&text);
                    emit.send(AgentEvent::Token { content: text }).await;
                }
                Some(Ok(ChatDelta::ToolCall {
                    index,
                    id,
                    name,
                    arguments,
                })) => {
                    calls.add(index, id, name, &arguments);
                }
                Some(Ok(ChatDelta::Usage {
                    prompt_tokens,
                    completion_tokens,
                })) => {
                    usage = Some((prompt_tokens, completion_tokens));
                }
            }
        }
        drop(stream);
        let calls = calls.finish();
        // Providers that report no usage are billed by our own count of what was sent and
        // what came back.
        let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
            let tool_text: String = calls
                .iter()
                .map(|c| format!("{}{}", c.name, c.arguments))
                .collect();
            (
                tokens::count_prompt(chat),
                tokens::count(&generated) + tokens::count(&tool_text),
            )
        });
        // What the provider generated is paid for, whether or not the call completed. The
        // cost of a final answer is recorded with the answer (one write fewer per turn).
        let settlement = self.billing.settlement(
            reservation,
            &payer(request),
            &charge(resolved, prompt_tokens, completion_tokens),
        );
        if failure.is_none() && calls.is_empty() {
            *final_settlement = Some(settlement);
        } else if let Err(e) = self.store.settle_usage(settlement).await {
            tracing::error!(error = %e, "could not record the call's usage");
        }
        // Reported like every call that is paid for, also one stopped or broken part way.
        emit.send(AgentEvent::Usage {
            prompt_tokens,
            completion_tokens,
            model: model.model_name().to_string(),
        })
        .await;
        let outcome = match &failure {
            None => "ok",
            Some(CallError::Cancelled) => "cancelled",
            Some(CallError::Llm(error)) => error.kind(),
            Some(_) => "failed",
        };
        record_call(
            model.model_name(),
            outcome,
            call_started,
            Some((prompt_tokens, completion_tokens)),
        );
        match failure {
            Some(failure) => Err(failure),
            None => Ok(calls),
        }
    }

    /// Runs one step's tool calls concurrently; `Err` ends the turn: cancelled meanwhile, or a
    /// billed tool refused because the tenant's allowance and wallet are spent (a cap is
    /// reported as a cap, whatever the model would make of the refusal).
    async fn run_tools(
        &self,
        request: &TurnRequest,
        emit: &Emitter,
        calls: &[ToolCall],
    ) -> Result<Vec<ChatMessage>, Outcome> {
        for call in calls {
            let message = self
                .tools
                .get(&call.name)
                .map(|t| t.progress_message().to_string())
                .unwrap_or_else(|| format!("Calling {}...", call.name));
            let details = request.tool_details;
            emit.send(AgentEvent::ToolStart {
                tool: call.name.clone(),
                message,
                call_id: details.then(|| call.id.clone()),
                arguments: details.then(|| {
                    serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|_| Value::String(call.arguments.clone()))
                }),
            })
            .await;
        }
        let context = ToolContext {
            principal: request.principal.clone(),
            session_id: Some(request.session_id.clone()),
        };
        let mut pending: FuturesUnordered<_> = calls
            .iter()
            .enumerate()
            .map(|(position, call)| {
                let context = context.clone();
                async move {
                    let mut capped = false;
                    let output = match serde_json::from_str::<Value>(if call.arguments.trim().is_empty() { "{}" } else { &call.arguments }) {
                        Err(e) => format!("Error: the arguments are not valid JSON ({e}); call {} again with a JSON object.", call.name),
                        Ok(arguments) => match self.tools.execute(&context, &call.name, arguments).await {
                            Ok(result) => result,
                            Err(error) => {
                                capped = error.code() == Code::CapExceeded;
                                format!("Error ({}): {error}", error.code())
                            }
                        },
                    };
                    (position, output, capped)
                }
            })
            .collect();
        let mut outputs = vec![String::new(); calls.len()];
        let mut capped = false;
        loop {
            let next = tokio::select! {
                next = pending.next() => next,
                _ = emit.cancel.cancelled() => return Err(Outcome::Cancelled),
            };
            let Some((position, output, refused)) = next else {
                break;
            };
            capped |= refused;
            let details = request.tool_details;
            emit.send(AgentEvent::ToolEnd {
                tool: calls[position].name.clone(),
                call_id: details.then(|| calls[position].id.clone()),
                result: details.then(|| shortened(&output, TOOL_RESULT_SHOWN)),
            })
            .await;
            outputs[position] = output;
        }
        if capped {
            return Err(Outcome::cap_exceeded());
        }
        Ok(calls
            .iter()
            .zip(outputs)
            .map(|(call, content)| ChatMessage::Tool {
                call_id: call.id.clone(),
                content,
            })
            .collect())
    }
}

/// The first `limit` characters of `text`, with a note of what was left out.
fn shortened(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
    }
}

enum CallError {
    Llm(LlmError),
    Cancelled,
    CapExceeded,
    Billing(String),
}

impl CallError {
    /// How the turn ends when a call fails before anything was answered.
    fn into_outcome(self) -> Outcome {
        self.into_outcome_after("")
    }

    /// How the turn ends when a call fails after `answer` was streamed.
    fn into_outcome_after(self, answer: &str) -> Outcome {
        match self {
            CallError::Cancelled => Outcome::Cancelled,
            CallError::CapExceeded => Outcome::cap_exceeded(),
            CallError::Billing(message) => Outcome::failed(&message),
            CallError::Llm(error) => Outcome::Failed {
                retryable: error.retryable() || !answer.is_empty(),
                message: error.to_string(),
                code: None,
            },
        }
    }
}

/// What a model call costs, by whose key it runs.
fn charge(resolved: &ResolvedModel, prompt_tokens: u64, completion_tokens: u64) -> Charge {
    match resolved.owner {
        KeyOwner::Builtin => Charge::Builtin {
            prompt_tokens,
            completion_tokens,
        },
        KeyOwner::Managed | KeyOwner::OwnKey => Charge::Llm {
            model: resolved.model.model_name().to_string(),
            prompt_tokens,
            completion_tokens,
        },
    }
}

fn payer(request: &TurnRequest) -> Payer {
    Payer {
        tenant_id: request.principal.tenant_id.clone(),
        user_id: request.principal.user_id.clone(),
        key_id: Some(request.principal.key_id.clone()),
        session_id: Some(request.session_id.clone()),
    }
}

fn retry_delay(error: &LlmError, attempt: u32, base: Duration) -> Duration {
    let asked = match error {
        LlmError::Status {
            retry_after: Some(seconds),
            ..
        } => Some(Duration::from_secs(*seconds)),
        _ => None,
    };
    asked
        .unwrap_or_else(|| base.saturating_mul(1 << attempt.min(6)))
        .min(Duration::from_secs(10))
}

/// Builds tool calls from streamed fragments. Fragments are grouped by index; a fragment that
/// carries a new id on an index already in use starts a new call (servers that reuse index 0
/// for every call tell them apart only by id).
#[derive(Default)]
struct ToolCallAssembler {
    calls: BTreeMap<(u32, u32), ToolCall>,
    generation: HashMap<u32, u32>,
}

impl ToolCallAssembler {
    fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn add(&mut self, index: u32, id: Option<String>, name: Option<String>, arguments: &str) {
        let generation = *self.generation.entry(index).or_insert(0);
        let generation = match (&id, self.calls.get(&(index, generation))) {
            (Some(new_id), Some(existing)) if !existing.id.is_empty() && &existing.id != new_id => {
                let next = generation + 1;
                self.generation.insert(index, next);
                next
            }
            _ => generation,
        };
        let call = self
            .calls
            .entry((index, generation))
            .or_insert_with(|| ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(name) = name {
            call.name.push_str(&name);
        }
        call.arguments.push_str(arguments);
    }

    fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_values()
            .enumerate()
            .map(|(n, mut call)| {
                if call.id.is_empty() {
                    call.id = format!("call_{n}");
                }
                call
            })
            .filter(|call| !call.name.is_empty())
            .collect()
    }
}

/// Counts one model call in the metrics: by model and outcome (`ok`, `cancelled`, or the
/// failure's kind), its duration, and the tokens it read and wrote.
fn record_call(
    model: &str,
    outcome: &'static str,
    started: std::time::Instant,
    tokens: Option<(u64, u64)>,
) {
    let model = model.to_string();
    metrics::counter!("llm_requests_total", "model" => model.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("llm_request_duration_seconds", "model" => model.clone())
        .record(started.elapsed().as_secs_f64());
    if let Some((prompt, completion)) = tokens {
        metrics::counter!("llm_tokens_total", "model" => model.clone(), "direction" => "prompt")
            .increment(prompt);
        metrics::counter!("llm_tokens_total", "model" => model, "direction" => "completion")
            .increment(completion);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_fragmented_tool_calls_by_index() {
        let mut calls = ToolCallAssembler::default();
        calls.add(0, Some("a".into()), Some("search".into()), "{\"qu");
        calls.add(1, Some("b".into()), Some("other".into()), "{}");
        calls.add(0, None, None, "ery\": \"x\"}");
        let calls = calls.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, "{\"query\": \"x\"}");
        assert_eq!(calls[1].name, "other");
    }

    #[test]
    fn tells_calls_apart_by_id_when_index_is_reused() {
        let mut calls = ToolCallAssembler::default();
        calls.add(0, Some("a".into()), Some("one".into()), "{}");
        calls.add(0, Some("b".into()), Some("two".into()), "{}");
        let names: Vec<String> = calls.finish().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    fn retry_delays_grow_and_honour_retry_after() {
        let base = Duration::from_millis(100);
        let server = LlmError::Status {
            status: 500,
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(retry_delay(&server, 0, base), Duration::from_millis(100));
        assert_eq!(retry_delay(&server, 2, base), Duration::from_millis(400));
        let limited = LlmError::Status {
            status: 429,
            message: String::new(),
            retry_after: Some(2),
        };
        assert_eq!(retry_delay(&limited, 0, base), Duration::from_secs(2));
    }
}
