//! Tenants never see each other's data (`X-Scope-OrgID`).

use serde_json::json;

use crate::client::{
    api_get, instant_query, label_object, recent_base_millis, remote_write, remote_write_ok,
    series, vector_response, write_request,
};
use crate::server::TestServer;

#[tokio::test]
async fn tenants_are_isolated() {
    let server = TestServer::start().await;
    let base = recent_base_millis(60);
    remote_write_ok(
        &server,
        Some("a"),
        &write_request(vec![series("tn_secret", &[("team", "a")], &[(base, 42.0)])]),
    )
    .await;
    remote_write_ok(
        &server,
        Some("b"),
        &write_request(vec![series("tn_other", &[("team", "b")], &[(base, 7.0)])]),
    )
    .await;
    let at = base + 1_000;
    let secret: &[(&str, &str)] = &[("__name__", "tn_secret"), ("team", "a")];
    let other: &[(&str, &str)] = &[("__name__", "tn_other"), ("team", "b")];

    // Tenant a sees its own data only.
    assert_eq!(
        instant_query(&server, Some("a"), "tn_secret", at).await,
        vector_response(at, &[(secret, "42")])
    );
    assert_eq!(
        instant_query(&server, Some("a"), "tn_other", at).await,
        vector_response(at, &[])
    );
    let (_, body) = api_get(
        &server,
        Some("a"),
        "/api/v1/series",
        &[("match[]", r#"{team=~".+"}"#)],
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": [label_object(secret)]})
    );

    // Tenant b and the default tenant do not see a's data, by any endpoint.
    for tenant in [Some("b"), None] {
        assert_eq!(
            instant_query(&server, tenant, "tn_secret", at).await,
            vector_response(at, &[]),
            "tenant {tenant:?}"
        );
        let (_, body) = api_get(
            &server,
            tenant,
            "/api/v1/series",
            &[("match[]", "tn_secret")],
        )
        .await;
        assert_eq!(
            body,
            json!({"status": "success", "data": []}),
            "tenant {tenant:?}"
        );
        let (_, body) = api_get(&server, tenant, "/api/v1/label/team/values", &[]).await;
        let expected = if tenant.is_some() {
            json!(["b"])
        } else {
            json!([])
        };
        assert_eq!(
            body,
            json!({"status": "success", "data": expected}),
            "tenant {tenant:?}"
        );
    }
    assert_eq!(
        instant_query(&server, Some("b"), "tn_other", at).await,
        vector_response(at, &[(other, "7")])
    );
    let (_, body) = api_get(&server, Some("b"), "/api/v1/label/__name__/values", &[]).await;
    assert_eq!(body, json!({"status": "success", "data": ["tn_other"]}));
    let (_, body) = api_get(&server, None, "/api/v1/labels", &[]).await;
    assert_eq!(body, json!({"status": "success", "data": []}));

    // A tenant id that could escape the data directory is refused, reads and writes.
    let (status, body) = api_get(&server, Some(".."), "/api/v1/labels", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    let (status, body) = remote_write(
        &server,
        Some("../a"),
        &write_request(vec![series("tn_escape", &[], &[(base, 1.0)])]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
