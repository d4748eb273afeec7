//! Any payload that decodes as a request: the daemon's first checks (names, paths) must
//! answer with an error or accept it, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::decode;
use protocol::Request;
use runtime::{Bundle, CheckpointName, ContainerId, Namespace};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode::<Request>(data) else {
        return;
    };
    let (namespace, id) = match &request {
        Request::Start(r) => {
            let _ = Bundle::open(&r.bundle);
            (r.namespace.as_str(), r.id.as_str())
        }
        Request::Kill(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::State(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::List(r) => (r.namespace.as_str(), ""),
        Request::Subscribe(r) => (r.namespace.as_str(), ""),
        Request::Info(_) => ("", ""),
        Request::Checkpoint(r) => {
            let _ = CheckpointName::new(&r.name);
            (r.namespace.as_str(), r.id.as_str())
        }
        Request::ListCheckpoints(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::DeleteCheckpoint(r) => {
            let _ = CheckpointName::new(&r.name);
            (r.namespace.as_str(), r.id.as_str())
        }
        Request::Wait(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::Pause(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::Resume(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::Update(r) => (r.namespace.as_str(), r.id.as_str()),
        Request::Stats(r) => {
            for id in &r.ids {
                let _ = ContainerId::new(id);
            }
            (r.namespace.as_str(), "")
        }
    };
    let _ = Namespace::new(namespace);
    let _ = ContainerId::new(id);
});
