//! Crashes and shutdowns: a SIGKILL mid-upload leaves only complete files and no
//! orphaned bytes; a SIGTERM lets requests in flight finish, then exits successfully.

use crate::common::*;
use reqwest::{Client, Method, StatusCode, multipart};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const MIB: usize = 1 << 20;

/// An upload that reports a dead server as an error instead of panicking.
async fn try_upload(
    client: &Client,
    url: &str,
    name: String,
    bytes: Vec<u8>,
) -> reqwest::Result<(StatusCode, Value)> {
    let form = multipart::Form::new().part("file", multipart::Part::bytes(bytes).file_name(name));
    let response = client
        .post(url)
        .bearer_auth(ACME)
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Every file of a session, walking the list page by page.
async fn all_files(server: &Server, sid: &str) -> Vec<Value> {
    let mut files = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{}?limit=100&order=asc", files_path(sid));
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, body) = server.get(&path, ACME).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        let data = body["data"].as_array().unwrap_or_else(|| panic!("{body}"));
        files.extend(data.iter().cloned());
        if body["has_more"] != true {
            return files;
        }
        after = Some(body["last_id"].as_str().unwrap().to_owned());
    }
}

async fn download(server: &Server, sid: &str, fid: &str) -> Vec<u8> {
    let response = server
        .request(
            Method::GET,
            &format!("{}/{fid}/content", files_path(sid)),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "content of {fid}");
    response.bytes().await.unwrap().to_vec()
}

fn chunks_of(bytes: u64) -> u64 {
    bytes.div_ceil(reshost::testing::CHUNK_BYTES as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_concurrent_uploads_leaves_only_complete_files_and_no_orphans() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let url = server.url(&files_path(&sid));
    let acked_count = Arc::new(AtomicUsize::new(0));

    let mut uploaders = Vec::new();
    for task in 0..4 {
        let (url, acked_count) = (url.clone(), acked_count.clone());
        uploaders.push(tokio::spawn(async move {
            let client = Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let mut bytes = vec![0u8; 8 * MIB];
            rand::fill(&mut bytes[..]);
            // file id → sha256 of every upload the server acknowledged.
            let mut acked = HashMap::new();
            for i in 0.. {
                // Each file differs from the last.
                rand::fill(&mut bytes[..32]);
                let sha = sha256_hex(&bytes);
                match try_upload(&client, &url, format!("t{task}-{i}.bin"), bytes.clone()).await {
                    Ok((StatusCode::CREATED, body)) => {
                        assert_eq!(body["metadata"]["sha256"], sha.as_str(), "{body}");
                        assert_eq!(body["metadata"]["bytes"], 8 * MIB, "{body}");
                        acked.insert(body["id"].as_str().unwrap().to_owned(), sha);
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, body)) => panic!("upload answered {status}: {body}"),
                    Err(_) => break, // the server is gone
                }
            }
            acked
        }));
    }

    // Kill it once some uploads are done and others are surely mid-body.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked_count.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();

    let mut acked = HashMap::new();
    for task in uploaders {
        acked.extend(task.await.unwrap());
    }
    assert!(
        acked.len() >= 4,
        "only {} uploads finished before the kill",
        acked.len()
    );

    server.spawn();
    let files = all_files(&server, &sid).await;
    assert!(
        files.len() >= acked.len() && files.len() <= acked.len() + 4,
        "{} files listed, {} acknowledged, 4 in flight",
        files.len(),
        acked.len()
    );
    let mut total_chunks = 0;
    for file in &files {
        let fid = file["id"].as_str().unwrap();
        let bytes = download(&server, &sid, fid).await;
        assert_eq!(
            bytes.len() as u64,
            file["metadata"]["bytes"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(
            sha256_hex(&bytes),
            file["metadata"]["sha256"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(bytes.len(), 8 * MIB, "a partial upload was kept: {file}");
        total_chunks += chunks_of(bytes.len() as u64);
    }
    for (fid, sha) in &acked {
        let file = files
            .iter()
            .find(|f| f["id"] == fid.as_str())
            .unwrap_or_else(|| panic!("acknowledged upload {fid} lost in the crash"));
        assert_eq!(file["metadata"]["sha256"], sha.as_str(), "{file}");
    }

    // The restarted server works, then shuts down cleanly with nothing left over.
    let (status, body) = server
        .upload(ACME, &sid, "after.txt", None, b"after".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        server.terminate(),
        "reshost did not exit cleanly: {}",
        server.stderr()
    );
    let stats = server.stored_blobs();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(
        stats.blobs,
        files.len() as u64 + 1,
        "orphaned blobs: {stats:?}"
    );
    assert_eq!(stats.chunks, total_chunks + 1, "orphaned chunks: {stats:?}");
}

#[tokio::test]
async fn sigterm_on_an_idle_server_exits_successfully_and_promptly() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, _) = server
        .upload(ACME, &sid, "a.txt", None, b"abc".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The client's idle keep-alive connections must not hold the shutdown up.
    let started = Instant::now();
    assert!(
        server.terminate(),
        "reshost did not exit cleanly: {}",
        server.stderr()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let stats = server.stored_blobs();
    assert_eq!(
        (stats.blobs, stats.chunks, stats.pending),
        (1, 1, 0),
        "{stats:?}"
    );

    // Everything is still there after a restart.
    server.spawn();
    let files = all_files(&server, &sid).await;
    assert_eq!(files.len(), 1);
    assert_eq!(
        download(&server, &sid, files[0]["id"].as_str().unwrap()).await,
        b"abc"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_an_in_flight_download_finish() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut bytes = vec![0u8; 32 * MIB];
    rand::fill(&mut bytes[..]);
    let sha = sha256_hex(&bytes);
    let (status, file) = server.upload(ACME, &sid, "big.bin", None, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap();

    let mut response = server
        .request(
            Method::GET,
            &format!("{}/{fid}/content", files_path(&sid)),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut got = response
        .chunk()
        .await
        .unwrap()
        .expect("a first chunk")
        .to_vec();

    let terminating = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let ok = server.terminate();
        (ok, server)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !terminating.is_finished(),
        "reshost exited with a download in flight"
    );

    // Read the rest slowly: ~50 ms per 2 MiB.
    let mut next_pause = got.len() + 2 * MIB;
    while let Some(chunk) = response
        .chunk()
        .await
        .expect("the download was cut off by SIGTERM")
    {
        got.extend_from_slice(&chunk);
        if got.len() >= next_pause {
            tokio::time::sleep(Duration::from_millis(50)).await;
            next_pause += 2 * MIB;
        }
    }
    assert_eq!(got.len(), 32 * MIB);
    assert_eq!(sha256_hex(&got), sha);

    let (ok, server) = terminating.await.unwrap();
    assert!(ok, "reshost did not exit cleanly: {}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_an_in_flight_upload_finish_and_keeps_it() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut bytes = vec![0u8; 12 * MIB];
    rand::fill(&mut bytes[..]);
    let sha = sha256_hex(&bytes);

    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
    let form =
        multipart::Form::new().part("file", multipart::Part::stream(body).file_name("slow.bin"));
    let request = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .multipart(form);
    let upload = tokio::spawn(async move { json_of(request.send().await.unwrap()).await });

    writer.write_all(&bytes[..2 * MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminating = tokio::task::spawn_blocking(move || {
        let ok = server.terminate();
        (ok, server)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !terminating.is_finished(),
        "reshost exited with an upload in flight"
    );
    for piece in bytes[2 * MIB..].chunks(MIB) {
        writer
            .write_all(piece)
            .await
            .expect("the upload was cut off by SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(writer);

    let (status, file) = upload.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["metadata"]["sha256"], sha.as_str(), "{file}");
    assert_eq!(file["metadata"]["bytes"], 12 * MIB, "{file}");

    let (ok, mut server) = terminating.await.unwrap();
    assert!(ok, "reshost did not exit cleanly: {}", server.stderr());
    let stats = server.stored_blobs();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stats.blobs, 1, "{stats:?}");

    server.spawn();
    let fid = file["id"].as_str().unwrap();
    let (status, meta) = server
        .get(&format!("{}/{fid}", files_path(&sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta, file);
    assert_eq!(sha256_hex(&download(&server, &sid, fid).await), sha);
}
