//! Tenant policies: every `/v1` request is put to the tenant's policy component
//! first; a denial is `403 forbidden` with the policy's reason and changes nothing,
//! a policy that fails denies, and one tenant's policy never touches another's
//! requests.

use crate::common::*;
use serde_json::json;

/// Tenant `initech` runs `components/rules-policy` with these rules; acme and
/// globex keep the embedded allow-all policy.
async fn server() -> Server {
    Server::with_config(&format!(
        "[[tenants]]\nname = \"initech\"\ntokens = [\"initech-token\"]\npolicy = {:?}\n\
         policy_config = {{ deny = [\"files.upload\", \"sessions.delete\"], reason = \"read-only tenant\", panic = [\"files.list\"] }}\n",
        reshost_test_artifacts::RULES_POLICY.path
    ))
    .await
}

const INITECH: &str = "initech-token";

#[tokio::test]
async fn a_denied_request_is_403_with_the_policys_reason_and_changes_nothing() {
    let server = server().await;
    let sid = server.session(INITECH).await;
    let got = server
        .upload(INITECH, &sid, "a.txt", None, b"hi".to_vec())
        .await;
    assert_error(&got, 403, "forbidden");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("read-only tenant"), "{message}");
    assert!(message.contains("files.upload"), "{message}");

    let got = server.delete(&format!("/v1/sessions/{sid}"), INITECH).await;
    assert_error(&got, 403, "forbidden");
    let (status, body) = server.get(&format!("/v1/sessions/{sid}"), INITECH).await;
    assert_eq!(status, 200, "the denied delete changed nothing: {body}");
    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources?type=file"), INITECH)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]), "the denied upload stored nothing");
}

#[tokio::test]
async fn a_policy_that_traps_denies_and_the_server_keeps_serving() {
    let server = server().await;
    let sid = server.session(INITECH).await;
    let got = server
        .get(&format!("/v1/sessions/{sid}/resources/files"), INITECH)
        .await;
    assert_error(&got, 403, "forbidden");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("panicked"),
        "no guest internals leak: {message}"
    );
    let (status, _) = server.get("/v1/sessions", INITECH).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_tenants_policy_never_affects_another_tenant() {
    let server = server().await;
    let sid = server.session(ACME).await;
    let (status, body) = server
        .upload(ACME, &sid, "a.txt", None, b"hi".to_vec())
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources/files"), ACME)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (status, body) = server.delete(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_policy_past_its_deadline_is_503_for_its_tenant_only_and_never_stalls_others() {
    let server = std::sync::Arc::new(
        Server::with_config(&format!(
            "[slots.policy]\ntimeout_ms = 300\n\
         [[tenants]]\nname = \"initech\"\ntokens = [\"initech-token\"]\npolicy = {:?}\n\
         policy_config = {{ spin = [\"files.list\"] }}\n",
            reshost_test_artifacts::RULES_POLICY.path
        ))
        .await,
    );
    let (stuck, other) = (server.session(INITECH).await, server.session(ACME).await);
    let spinning = {
        let (server, stuck) = (server.clone(), stuck.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let got = server
                .get(&format!("/v1/sessions/{stuck}/resources/files"), INITECH)
                .await;
            (got, started.elapsed())
        })
    };
    // While initech's policy spins, acme is answered as fast as ever.
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, body) = server
            .get(&format!("/v1/sessions/{other}/resources/files"), ACME)
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(200),
            "acme waited {:?}",
            started.elapsed()
        );
    }
    let (got, took) = spinning.await.unwrap();
    assert_error(&got, 503, "component_timeout");
    assert!(
        took >= std::time::Duration::from_millis(300) && took < std::time::Duration::from_secs(2),
        "the deadline is the policy slot's 300 ms: took {took:?}"
    );
    let (status, body) = server.get("/v1/sessions", INITECH).await;
    assert_eq!(status, 200, "initech's other requests still pass: {body}");
}
