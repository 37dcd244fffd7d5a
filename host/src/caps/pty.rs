//! Host side of `reshost:api/pty`: the calling session's terminals. A call names
//! terminals by id; only those its session owns are found.

use super::CapsView;
use crate::bindings::pty::{Host, Spec as WitSpec, State};
use crate::bindings::types::{Error, ErrorCode};
use crate::pty::{MAX_DIMENSION, Spec, Status as Live, Terminal};
use crate::store::Move;
use std::sync::Arc;

fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error {
        code,
        message: message.into(),
    }
}

fn state(live: Live) -> State {
    State {
        running: live.running,
        pid: live.pid,
        exit_code: live.exit_code,
        cols: live.cols,
        rows: live.rows,
    }
}

impl CapsView<'_> {
    fn terminals_cap(&self) -> wasmtime::Result<(&super::TerminalsCap, &str)> {
        self.caps
            .terminals()
            .ok_or_else(|| wasmtime::format_err!("terminals are not granted to this call"))
    }

    /// The session's live terminal `id`.
    fn terminal(&self, id: &str) -> wasmtime::Result<Option<Arc<Terminal>>> {
        let (cap, session) = self.terminals_cap()?;
        Ok(cap.terminals.get(session, id))
    }
}

impl Host for CapsView<'_> {
    fn spawn(&mut self, id: String, spec: WitSpec) -> wasmtime::Result<Result<State, Error>> {
        let (cap, session) = self.terminals_cap()?;
        let cwd = match super::exec::working_dir(&cap.workspace, &spec.cwd) {
            Ok(dir) => dir,
            Err(e) => return Ok(Err(e)),
        };
        let spec = Spec {
            command: spec.command,
            args: spec.args,
            env: spec.env,
            cwd,
            home: cap.workspace.clone(),
            // What a component asks is capped by what the operator allows.
            cols: spec.cols.clamp(1, MAX_DIMENSION),
            rows: spec.rows.clamp(1, MAX_DIMENSION),
            scrollback_bytes: usize::try_from(spec.scrollback_bytes.min(cap.max_scrollback_bytes))
                .unwrap_or(usize::MAX),
        };
        Ok(
            match cap
                .terminals
                .spawn(session, &id, &spec, &cap.sandbox, cap.client_buffer_bytes)
            {
                Ok(terminal) => Ok(state(terminal.status())),
                Err(e) => Err(error(
                    ErrorCode::InvalidInput,
                    format!("the terminal could not start: {e:#}"),
                )),
            },
        )
    }

    fn status(&mut self, id: String) -> wasmtime::Result<Option<State>> {
        Ok(self.terminal(&id)?.map(|t| state(t.status())))
    }

    fn kill(&mut self, id: String) -> wasmtime::Result<bool> {
        let Some(terminal) = self.terminal(&id)? else {
            return Ok(false);
        };
        let (cap, session) = self.terminals_cap()?;
        let running = terminal.status().running;
        cap.terminals.close(session, &id);
        Ok(running)
    }

    fn transfer(
        &mut self,
        id: String,
        target: String,
        json: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (cap, session) = self.terminals_cap()?;
        let moved = self.caps.store()?.move_record(
            &cap.tenant,
            (session, &target),
            "terminal",
            &id,
            &json,
        )?;
        Ok(match moved {
            Move::Moved => {
                cap.terminals.transfer(session, &id, &target);
                Ok(())
            }
            Move::NoTarget => Err(error(
                ErrorCode::NotFound,
                format!("no such session: {target}"),
            )),
            Move::Taken => Err(error(
                ErrorCode::Conflict,
                format!("session {target} already has a terminal {id}"),
            )),
            Move::Gone => Err(error(
                ErrorCode::NotFound,
                format!("no such terminal: {id}"),
            )),
        })
    }
}
