//! A `files` handler that misbehaves on request, so the host's isolation can be
//! tested: `GET …/files/{id}` with id `panic` panics, `spin` loops forever, `hog`
//! allocates without bound; any other id answers `404` like a healthy handler.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "files",
});

use exports::reshost::api::files_handler::{Caller, Download, Error, Guest, Upload};
use reshost::api::types::ErrorCode;

struct Faulty;

fn misbehave(what: &str) -> Error {
    match what {
        "panic" => panic!("faulty component panicked on request"),
        "spin" => loop {
            std::hint::black_box(());
        },
        "hog" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => Error {
            code: ErrorCode::NotFound,
            message: format!("no such file: {what}"),
        },
    }
}

impl Guest for Faulty {
    fn list(_: Caller, _: Vec<(String, String)>) -> Result<String, Error> {
        Ok(r#"{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}"#.into())
    }
    fn create(_: Caller, _: Upload) -> Result<String, Error> {
        Err(misbehave("panic"))
    }
    fn get(_: Caller, file_id: String) -> Result<String, Error> {
        Err(misbehave(&file_id))
    }
    fn content(_: Caller, file_id: String) -> Result<Download, Error> {
        Err(misbehave(&file_id))
    }
    fn delete(_: Caller, file_id: String) -> Result<String, Error> {
        Err(misbehave(&file_id))
    }
}

export!(Faulty);
