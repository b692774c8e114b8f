//! The Lua scripts (one per file under `lua/`), and script calls that can
//! also go out in a pipeline: redis-rs's own
//! `ScriptInvocation` only runs alone, and a worker writes a whole batch of
//! compare-and-sets in one round trip.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisResult, Script, ToRedisArgs};

/// A call of a Lua script being built: keys, then arguments.
pub(super) struct ScriptCall<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl<'a> ScriptCall<'a> {
    pub(super) fn new(script: &'a Script) -> Self {
        Self {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds `KEYS[n]`.
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds `ARGV[n]`.
    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn evalsha(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(self.keys.len());
        for part in self.keys.iter().chain(&self.args) {
            cmd.arg(&part[..]);
        }
        cmd
    }

    /// Adds the call to `pipe`; see [`run_pipeline`] for sending it.
    pub(super) fn add_to(&self, pipe: &mut Pipeline) {
        pipe.add_command(self.evalsha());
    }

    /// Runs the call alone, loading the script first if Redis lost it.
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        let cmd = self.evalsha();
        match cmd.query_async(connection).await {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                self.script.load_async(connection).await?;
                cmd.query_async(connection).await
            }
            other => other,
        }
    }
}

/// Sends a pipeline holding calls of `scripts`, loading them and sending it
/// again if Redis lost them (a restart, a flush). Redis refuses an EVALSHA
/// of an unknown script, so none of those ran; the others did, so all the
/// pipeline holds must be safe to repeat.
pub(super) async fn run_pipeline<T: FromRedisValue>(
    scripts: &[&Script],
    pipe: &Pipeline,
    connection: &mut impl ConnectionLike,
) -> RedisResult<T> {
    match pipe.query_async(connection).await {
        Err(e) if e.kind() == ErrorKind::NoScriptError => {
            for script in scripts {
                script.load_async(connection).await?;
            }
            pipe.query_async(connection).await
        }
        other => other,
    }
}

/// A script of `lua/`, `after` the functions of `lua/lib/` it calls: each
/// file holds one script, with a header naming its KEYS and ARGV.
macro_rules! lua {
    ($script:literal $(after $($lib:literal),+)?) => {
        Script::new(concat!(
            $($(include_str!(concat!("lua/lib/", $lib, ".lua")),)+)?
            include_str!(concat!("lua/", $script, ".lua"))
        ))
    };
}

/// The Lua scripts, loaded into Redis on first use (EVALSHA, then a
/// reload when Redis lost its script cache).
pub(super) struct Scripts {
    pub(super) claim_and_append: Script,
    pub(super) compare_and_set: Script,
    pub(super) claim_append_and_set: Script,
    pub(super) compare_and_set_many: Script,
    pub(super) create_order: Script,
    pub(super) delete_order: Script,
    pub(super) register_worker: Script,
    pub(super) renew_lease: Script,
    pub(super) release_lease: Script,
    pub(super) trim_log: Script,
    pub(super) backlog: Script,
    pub(super) fire_stall: Script,
    pub(super) settle_delivery: Script,
    pub(super) requeue_delivery: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            claim_and_append: lua!("claim_and_append" after "claim_and_append"),
            compare_and_set: lua!("compare_and_set" after "enqueue", "compare_and_set"),
            claim_append_and_set: lua!(
                "claim_append_and_set" after "enqueue", "claim_and_append", "compare_and_set"
            ),
            compare_and_set_many: lua!("compare_and_set_many"),
            create_order: lua!("create_order"),
            delete_order: lua!("delete_order"),
            register_worker: lua!("register_worker"),
            renew_lease: lua!("renew_lease"),
            release_lease: lua!("release_lease"),
            trim_log: lua!("trim_log"),
            backlog: lua!("backlog"),
            fire_stall: lua!("fire_stall" after "enqueue"),
            settle_delivery: lua!("settle_delivery"),
            requeue_delivery: lua!("requeue_delivery"),
        }
    }
}
