//! Builds the application from settings: storage, status maps, the HTTP
//! server (each of its threads with its own storage handle), and, on two
//! threads of lower priority with their own storage handles, the worker
//! and the automations' dispatcher with the stall scanner; `build` binds
//! (port 0 in tests), `port` says where, `run_until_stopped` serves until
//! the shutdown token fires.

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;

use actix_web::dev::{ResourceDef, Server};
use actix_web::http::{header, Method};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

use crate::config::{Backend, Settings};
use crate::fulfillment::automations::{Automations, StallScanner};
use crate::fulfillment::{FulfillmentCore, Recorder, Worker};
use crate::http::{self, RequestId};
use crate::ingest::{self, RefusalTally, StoreDirectory};
use crate::ops;
use crate::ops::metrics::{self, Metrics};
use crate::ops::openapi::ServedDocument;
use crate::providers::defined::{undefined_providers, Catalog, DefinitionError, UndefinedProvider};
use crate::providers::status_map::{StatusMapError, StatusMaps};
use crate::storage::{self, Storage, StorageError};

/// What every request handler shares. Each HTTP worker thread has its
/// own copy, with its own storage handle (see [`AppState::on_this_thread`]).
#[derive(Clone)]
pub struct AppState {
    pub settings: Settings,
    pub stores: StoreDirectory,
    pub maps: StatusMaps,
    /// The data-defined providers, by name.
    pub catalog: Catalog,
    pub storage: Arc<dyn Storage>,
    pub core: FulfillmentCore,
    pub metrics: Metrics,
    pub automations: Automations,
    /// Refused requests not yet added to the stats (flushed in batches).
    pub refusals: RefusalTally,
}

impl AppState {
    /// This state with a storage handle whose I/O runs on the calling
    /// thread's runtime: on Redis, each HTTP worker thread gets its own
    /// connection, so a request's round trip never hops to another thread
    /// and back.
    async fn on_this_thread(self) -> Result<Self, StorageError> {
        let Handles {
            storage,
            automations,
            core,
        } = Handles::on_this_thread(&self.settings, &self.storage, &self.automations).await?;
        Ok(Self {
            storage,
            automations,
            core,
            ..self
        })
    }
}

/// The storage, automations and core a thread works through, with the
/// storage's I/O on that thread's runtime (see [`storage::reopen`]).
struct Handles {
    storage: Arc<dyn Storage>,
    automations: Automations,
    core: FulfillmentCore,
}

impl Handles {
    async fn on_this_thread(
        settings: &Settings,
        storage: &Arc<dyn Storage>,
        automations: &Automations,
    ) -> Result<Self, StorageError> {
        let storage = storage::reopen(settings, storage).await?;
        let automations = automations.with_storage(storage.clone());
        let core = FulfillmentCore::new(storage.clone(), automations.clone());
        Ok(Self {
            storage,
            automations,
            core,
        })
    }
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("status map {0}")]
    StatusMap(#[from] StatusMapError),
    #[error("provider definition {0}")]
    Definition(#[from] DefinitionError),
    #[error("configuration key `{key}`: {problem}")]
    Config { key: String, problem: String },
    #[error("cannot open storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot set up the automation delivery client: {0}")]
    Delivery(#[from] reqwest::Error),
    #[error("cannot start a background thread: {0}")]
    Background(std::io::Error),
    #[error("the OpenAPI document does not serialize: {0}")]
    OpenApi(serde_json::Error),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// The route table: every path the gateway serves, each registered with
/// its OpenAPI operation through `utoipa-actix-web`, so that no route is
/// served undocumented, documented unserved, or served under another path
/// than the document says.
fn routes(cfg: &mut ServiceConfig) {
    ingest::routes(cfg);
    ops::routes(cfg);
}

/// The operations and schemas of the route table, gathered from a table
/// that is built but never served.
fn gathered_document() -> utoipa::openapi::OpenApi {
    let (_, gathered) = App::new()
        .into_utoipa_app()
        .configure(routes)
        .split_for_parts();
    gathered
}

/// The operations of one path, by method.
fn operations(item: PathItem) -> Vec<(Method, Operation)> {
    [
        (Method::GET, item.get),
        (Method::PUT, item.put),
        (Method::POST, item.post),
        (Method::DELETE, item.delete),
        (Method::OPTIONS, item.options),
        (Method::HEAD, item.head),
        (Method::PATCH, item.patch),
        (Method::TRACE, item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
    .collect()
}

/// Each path of the route table with the methods it serves, so that a
/// method it does not serve is answered 405 with `Allow` (RFC 9110,
/// 15.5.6), not the 404 of a path that does not exist.
struct KnownPaths(Vec<(ResourceDef, String)>);

impl KnownPaths {
    fn new(document: &utoipa::openapi::OpenApi) -> Self {
        let paths = document.paths.paths.iter().map(|(path, item)| {
            let methods: Vec<String> = operations(item.clone())
                .into_iter()
                .map(|(method, _)| method.to_string())
                .collect();
            (ResourceDef::new(path.as_str()), methods.join(", "))
        });
        Self(paths.collect())
    }

    /// The `Allow` value of the route-table path `path` matches, if any.
    fn allowed(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(pattern, _)| pattern.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// A built application, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    background: Background,
    stop_worker: CancellationToken,
    shutdown: CancellationToken,
}

/// Binds `address` with room for `backlog` unaccepted connections:
/// `std`'s bind queues only 128, and a connection that finds the queue
/// full waits a second for its SYN retry.
fn listen(address: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does on Unix: a restart may bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

impl Application {
    /// Opens storage, checks the status maps, binds the listener and starts
    /// the worker, the dispatcher and the stall scanner on their threads.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let maps = StatusMaps::load(settings.providers_dir())?;
        let catalog = Catalog::load(settings.providers_dir())?;
        check_defined_providers(&settings, &catalog)?;
        let gathered = gathered_document();
        let known_paths = web::Data::new(KnownPaths::new(&gathered));
        let document =
            web::Data::new(ServedDocument::new(gathered, &catalog).map_err(StartupError::OpenApi)?);
        let storage = storage::open(&settings).await?;
        warn_about_development_setup(&settings);
        let automations = Automations::new(&settings, storage.clone());
        let core = FulfillmentCore::new(storage.clone(), automations.clone());
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let bind_error = |source| StartupError::Bind {
            address: address.clone(),
            source,
        };
        let listener = listen(&address, settings.server.backlog).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let shutdown_timeout = settings.server.shutdown_timeout.as_secs();
        let workers = http_workers();
        let connections_per_worker = (settings.server.max_connections / workers).max(1);
        let stop_worker = CancellationToken::new();
        let metrics = Metrics::new(&catalog.providers());
        metrics.keep_up(stop_worker.clone());
        let refusals = RefusalTally::default();
        let background = Background::start(
            &settings,
            &storage,
            &automations,
            &metrics,
            &refusals,
            stop_worker.clone(),
        )
        .await?;
        let state = AppState {
            stores: StoreDirectory::new(&settings),
            settings,
            maps,
            catalog,
            storage,
            core,
            metrics,
            automations,
            refusals,
        };
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new()
                .into_utoipa_app()
                .data_factory(move || state.clone().on_this_thread())
                .app_data(document.clone())
                .app_data(known_paths.clone())
                .configure(routes)
                .default_service(web::to(no_route))
                .into_app()
                // Innermost first: refusals are counted within the timing,
                // and all of it runs in the request's span with its id.
                .wrap_fn(ingest::count_refusals)
                .wrap(actix_web::middleware::from_fn(metrics::time_requests))
                .wrap_fn(http::answer_in_request_span)
        })
        .listen(listener)
        .map_err(|e| {
            stop_worker.cancel();
            bind_error(e)
        })?
        .disable_signals()
        .workers(workers)
        // actix counts per worker thread: together at most max_connections
        // (but one per thread at least).
        .max_connections(connections_per_worker)
        .shutdown_timeout(shutdown_timeout)
        .run();
        tracing::info!(%address, port, "listening");
        Ok(Self {
            port,
            server,
            background,
            stop_worker,
            shutdown: CancellationToken::new(),
        })
    }

    /// The port the server listens on (the real one when 0 was asked for).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token fires; then stops accepting,
    /// finishes requests in flight, lets the worker finish its batch and
    /// release its leases, lets deliveries in flight finish, and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tracing::info!("shutting down: finishing requests in flight");
            handle.stop(true).await;
        });
        let served = self.server.await;
        self.stop_worker.cancel();
        self.background.stopped().await;
        tracing::info!("stopped");
        served
    }
}

/// The background work, on two threads of their own at `worker.nice`, so
/// that under a burst the HTTP side gets the CPU first and what it
/// accepted waits, durable, in the event log: the worker and the flusher
/// of the refusal tally on `shipgate-worker`; the automations' dispatcher
/// and the stall scanner on `shipgate-outbox`, so that applies never
/// queue behind sending and settling deliveries.
struct Background {
    threads: [BackgroundThread; 2],
}

impl Background {
    /// Starts both threads and waits until their tasks run there.
    async fn start(
        settings: &Settings,
        storage: &Arc<dyn Storage>,
        automations: &Automations,
        metrics: &Metrics,
        refusals: &RefusalTally,
        stop: CancellationToken,
    ) -> Result<Self, StartupError> {
        // The dispatcher and the stall scanner serve the worker's partitions.
        let worker_id = Worker::fresh_id();
        let (id, recorder, refusals, until) = (
            worker_id.clone(),
            metrics.clone(),
            refusals.clone(),
            stop.clone(),
        );
        let worker = BackgroundThread::start(
            "shipgate-worker",
            settings,
            storage,
            automations,
            move |settings, handles| {
                let recorder: Arc<dyn Recorder> = Arc::new(recorder);
                let flusher = refusals.keep_flushing(
                    handles.storage.clone(),
                    recorder.clone(),
                    until.clone(),
                );
                let worker = Worker::new(
                    id,
                    handles.core,
                    handles.storage,
                    settings.worker.clone(),
                    recorder,
                );
                Ok(vec![
                    (tokio::spawn(worker.run(until)), "worker"),
                    (tokio::spawn(flusher), "refusal counter"),
                ])
            },
        )
        .await?;
        let (recorder, until) = (metrics.clone(), stop.clone());
        let dispatch = BackgroundThread::start(
            "shipgate-outbox",
            settings,
            storage,
            automations,
            move |settings, handles| {
                let recorder: Arc<dyn Recorder> = Arc::new(recorder);
                let dispatcher = handles.automations.dispatcher(
                    &settings.delivery,
                    &worker_id,
                    settings.server.shutdown_timeout,
                    recorder,
                )?;
                let stall_scanner = StallScanner::new(
                    handles.core,
                    handles.automations,
                    &worker_id,
                    settings.core.stall_after,
                );
                Ok(vec![
                    (tokio::spawn(dispatcher.run(until.clone())), "dispatcher"),
                    (tokio::spawn(stall_scanner.run(until)), "stall scanner"),
                ])
            },
        )
        .await;
        match dispatch {
            Ok(dispatch) => Ok(Self {
                threads: [worker, dispatch],
            }),
            Err(e) => {
                // Ends the worker's thread: the application does not start.
                stop.cancel();
                Err(e)
            }
        }
    }

    /// Waits until both threads have finished their tasks, reporting a
    /// thread that died.
    async fn stopped(self) {
        for thread in self.threads {
            if thread.stopped.await.is_err() {
                tracing::error!(thread = thread.name, "a background thread ended abnormally");
            }
        }
    }
}

/// Named tasks spawned on a background thread, awaited in turn when it stops.
type Tasks = Vec<(JoinHandle<()>, &'static str)>;

/// A thread with a current-thread runtime of its own at `worker.nice`,
/// whose tasks reach storage through a handle whose I/O runs there (on
/// Redis, a connection of its own).
struct BackgroundThread {
    name: &'static str,
    /// Resolves when its tasks have finished (an error if the thread died).
    stopped: oneshot::Receiver<()>,
}

impl BackgroundThread {
    /// Starts thread `name` (at most 15 bytes: Linux cuts a longer one)
    /// and waits until `spawn` has spawned its tasks there, given this
    /// thread's handles.
    async fn start<F>(
        name: &'static str,
        settings: &Settings,
        storage: &Arc<dyn Storage>,
        automations: &Automations,
        spawn: F,
    ) -> Result<Self, StartupError>
    where
        F: FnOnce(&Settings, Handles) -> Result<Tasks, StartupError> + Send + 'static,
    {
        let (started_tx, started) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        let (settings, storage) = (settings.clone(), storage.clone());
        let automations = automations.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartupError::Background)?;
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                lower_priority(settings.worker.nice);
                runtime.block_on(async move {
                    let spawned = Handles::on_this_thread(&settings, &storage, &automations)
                        .await
                        .map_err(StartupError::from)
                        .and_then(|handles| spawn(&settings, handles));
                    let tasks = match spawned {
                        Ok(tasks) => tasks,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    for (task, task_name) in tasks {
                        if let Err(e) = task.await {
                            tracing::error!(error = %e, "{task_name} ended abnormally");
                        }
                    }
                });
                // After the runtime, and so its connections, are gone.
                drop(runtime);
                let _ = stopped_tx.send(());
            })
            .map_err(StartupError::Background)?;
        match started.await {
            Ok(Ok(())) => Ok(Self { name, stopped }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StartupError::Background(std::io::Error::other(format!(
                "{name} died while starting"
            )))),
        }
    }
}

/// The HTTP worker threads: one per CPU, as actix would choose, but
/// chosen here so that `server.max_connections` can be shared out.
fn http_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Gives the calling thread the nice value `nice` (on Linux the nice value
/// is per thread). Failing to is only worth a warning: the workers then
/// compete with ingest on equal terms.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its arguments; 0 means this thread.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "cannot lower the workers' priority (worker.nice)"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "worker.nice only takes effect on Linux");
}

/// Every `[stores.NAME.providers.PROVIDER]` names a loaded definition.
fn check_defined_providers(settings: &Settings, catalog: &Catalog) -> Result<(), StartupError> {
    let defined: Vec<&str> = catalog.iter().map(|d| d.name.as_str()).collect();
    match undefined_providers(settings, &defined).into_iter().next() {
        Some(UndefinedProvider { key, problem }) => Err(StartupError::Config { key, problem }),
        None => Ok(()),
    }
}

fn warn_about_development_setup(settings: &Settings) {
    if settings
        .status_maps
        .as_ref()
        .is_some_and(|old| old.dir.is_some())
    {
        tracing::warn!(
            "status_maps.dir is deprecated: it is now providers.dir (SHIPGATE__PROVIDERS__DIR), \
             which also loads provider definitions; rename the key"
        );
    }
    if settings.storage.backend == Backend::Memory {
        tracing::warn!(
            "storage.backend is \"memory\": everything is kept in this process and lost on restart; \
             use \"redis\" in production"
        );
    }
    let dev = settings.development_credentials();
    if !dev.is_empty() {
        tracing::warn!(
            keys = %dev.join(", "),
            "DEVELOPMENT CREDENTIALS IN USE: anyone who read the default config can call this gateway; \
             replace them, or disable the demo store with stores.acme.enabled = false"
        );
    }
}

/// Answers a method and path the route table does not serve: 405 with
/// `Allow` for a path it serves with other methods, else 404.
async fn no_route(req: HttpRequest, known: web::Data<KnownPaths>) -> HttpResponse {
    if let Some(allow) = known.allowed(req.path()) {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(json!({
                "error": format!(
                    "method {} is not served on {}; it allows {allow}",
                    req.method(),
                    req.path()
                ),
                "requestId": RequestId::current(),
            }));
    }
    HttpResponse::NotFound().json(json!({
        "error": format!("no route for {} {}", req.method(), req.path()),
        "requestId": RequestId::current(),
    }))
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    use actix_web::http::StatusCode;
    use actix_web::test::{call_service, init_service, TestRequest};

    use super::*;

    #[test]
    fn the_listener_queues_its_backlog_of_unaccepted_connections() {
        // Nothing accepts while they connect: every connection past the
        // queue's room would have its SYN dropped and not connect within
        // the timeout. std's bind leaves room for 128.
        let listener = listen("127.0.0.1:0", 512).expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let _clients: Vec<TcpStream> = (0..400)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i} of 400 was not queued: {e}"))
            })
            .collect();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let queued = std::iter::from_fn(|| listener.accept().ok()).count();
        assert_eq!(queued, 400, "the listener handed over what it queued");
    }

    #[tokio::test]
    async fn an_address_that_does_not_resolve_is_refused_naming_it() {
        let settings = Settings::load_with_env(
            None,
            [(
                "SHIPGATE__SERVER__HOST".into(),
                "no-such-host.invalid".into(),
            )],
        )
        .expect("settings");
        match Application::build(settings).await {
            Err(StartupError::Bind { address, .. }) => {
                assert_eq!(address, "no-such-host.invalid:8080")
            }
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("bound an address that does not resolve"),
        }
    }

    /// `path` with every `{parameter}` filled with 1.
    fn concrete(path: &str) -> String {
        let mut filled = String::new();
        let mut rest = path;
        while let Some((head, tail)) = rest.split_once('{') {
            filled.push_str(head);
            filled.push('1');
            rest = tail.split_once('}').map_or("", |(_, after)| after);
        }
        filled.push_str(rest);
        filled
    }

    /// Reads the route table itself, not its source: each documented
    /// operation reaches a route registered under exactly its documented
    /// path and method (the handlers, without the app's state, answer
    /// something other than the router's 404 or 405), and a path or
    /// method the document does not list reaches none.
    #[actix_web::test]
    async fn the_route_table_serves_exactly_the_documented_operations() {
        let (app, document) = App::new()
            .into_utoipa_app()
            .configure(routes)
            .split_for_parts();
        let app = init_service(app).await;
        let mut served = Vec::new();
        for (path, item) in document.paths.paths {
            for (method, operation) in operations(item) {
                let request = TestRequest::default()
                    .method(method.clone())
                    .uri(&concrete(&path))
                    .to_request();
                let response = call_service(&app, request).await;
                let at = format!("{method} {path} ({:?})", operation.operation_id);
                assert_ne!(response.status(), StatusCode::NOT_FOUND, "{at}");
                assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{at}");
                assert_eq!(
                    response.request().match_pattern().as_deref(),
                    Some(path.as_str()),
                    "{at} is served under another path"
                );
                served.push(at);
            }
        }
        assert!(served.len() >= 30, "only {served:#?}");
        for (method, path) in [
            (Method::GET, "/webhooks/shopify"),
            (Method::PUT, "/v2.2/stores/1/orders"),
            (Method::POST, "/openapi.json"),
            (Method::GET, "/api/v1/no-such-thing"),
            (Method::GET, "/"),
        ] {
            let request = TestRequest::default()
                .method(method.clone())
                .uri(path)
                .to_request();
            let response = call_service(&app, request).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
}
