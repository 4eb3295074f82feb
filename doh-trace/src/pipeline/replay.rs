//! Replaying a recording through the pipeline (`doh-trace replay`, the replay tests).

use std::io::{self, Read};

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    lookup::{resolvers::ResolverList, Lookup},
    pipeline::{Pipeline, Settings},
    source::recording::{read_header, read_record, Record, RecordedProcessInfo, RecordingError},
};

/// Runs the decoding pipeline on a recording: every lookup goes to `on_lookup`, which returns
/// false to stop early. Returns the pipeline's counters.
pub fn replay(
    r: impl Read,
    mut on_lookup: impl FnMut(Lookup) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    replay_into(r, |pipeline| {
        let lookups: Vec<Box<Lookup>> = pipeline.drain_lookups().collect();
        for lookup in lookups {
            if !on_lookup(*lookup)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Runs the decoding pipeline on a recording, handing the pipeline to `after_each` after every
/// event (to drain lookups and connection records); it returns false to stop early.
pub fn replay_into(
    r: impl Read,
    after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    replay_into_with(r, ResolverList::builtin(), after_each)
}

/// [`replay_into`] with other settings (a resolver list other than the built-in one, or a
/// memory budget).
pub fn replay_into_with(
    mut r: impl Read,
    settings: impl Into<Settings>,
    mut after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    let header = read_header(&mut r)?;
    let mut pipeline = Pipeline::new(
        Box::new(RecordedProcessInfo::default()),
        Clock::with_offset(header.clock_offset_ns.into()),
    );
    pipeline.configure(settings.into());
    while let Some(rec) = read_record(&mut r)? {
        match rec {
            Record::ProcessName { pid, name } => pipeline.process_info().remember_name(pid, name),
            Record::SocketEnds { pid, fd, ends } => {
                pipeline.process_info().remember_socket(pid, fd, ends)
            }
            Record::ProcessContext { pid, context } => {
                pipeline.process_info().remember_context(pid, context)
            }
            Record::Event(raw) => {
                pipeline.handle_record(&raw);
                let _ = pipeline.drain_decisions();
                if !after_each(&mut pipeline)? {
                    break;
                }
            }
        }
    }
    Ok(pipeline.counters().clone())
}
