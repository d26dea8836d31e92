//! File connector: CSV / JSON / NDJSON round trips, write modes, atomicity, path confinement.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use workspace::connectors::{
    open_destination, open_source, test_connection, ConnectionSpec, ConnectionType,
    ConnectorContext, ConnectorError, DestinationSpec, Record, SourceSpec, WriteMode, BATCH_SIZE,
};

/// These tests reach services on this machine, which an operator allows explicitly.
fn local_services() -> std::sync::Arc<workspace::EgressPolicy> {
    std::sync::Arc::new(
        workspace::EgressPolicy::from_allow_list("127.0.0.0/8,::1").expect("allow list"),
    )
}

fn file_conn(path: &str, format: &str) -> ConnectionSpec {
    ConnectionSpec {
        name: "files".into(),
        kind: ConnectionType::File,
        params: BTreeMap::from([
            ("path".to_string(), path.to_string()),
            ("format".to_string(), format.to_string()),
        ]),
    }
}

fn ctx(dir: &Path) -> ConnectorContext {
    ConnectorContext::new(dir.to_path_buf(), local_services())
}

fn rec(value: Value) -> Record {
    workspace::flatten::flatten(value)
}

fn dest(target: &str, mode: WriteMode) -> DestinationSpec {
    DestinationSpec {
        target: target.into(),
        mode,
        key: vec![],
    }
}

async fn write(
    conn: &ConnectionSpec,
    ctx: &ConnectorContext,
    target: &str,
    mode: WriteMode,
    batches: &[Vec<Record>],
) -> Result<u64, ConnectorError> {
    let mut destination = open_destination(conn, &dest(target, mode), ctx).await?;
    let mut written = 0;
    for batch in batches {
        match destination.write_batch(batch).await {
            Ok(n) => written += n,
            Err(error) => {
                destination.rollback().await?;
                return Err(error);
            }
        }
    }
    destination.commit().await?;
    Ok(written)
}

async fn read(
    conn: &ConnectionSpec,
    ctx: &ConnectorContext,
    name: &str,
) -> Result<Vec<Record>, ConnectorError> {
    let mut source = open_source(conn, &SourceSpec::Resource(name.into()), ctx).await?;
    let mut all = Vec::new();
    while let Some(batch) = source.next_batch().await? {
        assert!(!batch.is_empty() && batch.len() <= BATCH_SIZE);
        all.extend(batch);
    }
    Ok(all)
}

fn sample() -> Vec<Record> {
    vec![
        rec(
            json!({"id": 1, "name": "Ann, \"the\" first", "customer": {"id": 10, "zip": "0150"}, "tags": ["a", "b"], "paid": true, "total": 19.5, "note": null}),
        ),
        rec(
            json!({"id": 2, "name": "Line\nbreak", "customer": {"id": 11, "zip": "1000"}, "tags": [], "paid": false, "total": 7, "note": "x"}),
        ),
    ]
}

fn temp_files(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let conn = file_conn("exports", "csv");
    assert_eq!(
        write(&conn, &ctx, "out.csv", WriteMode::Replace, &[sample()])
            .await
            .unwrap(),
        2
    );
    let text = std::fs::read_to_string(dir.path().join("exports/out.csv")).unwrap();
    assert!(
        text.starts_with("id,name,customer.id,customer.zip,tags,paid,total,note\n"),
        "{text}"
    );
    let back = read(&conn, &ctx, "out.csv").await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0]["id"], json!(1));
    assert_eq!(back[0]["name"], json!("Ann, \"the\" first"));
    assert_eq!(back[0]["customer.zip"], json!("0150"));
    assert_eq!(back[0]["customer.id"], json!(10));
    assert_eq!(back[0]["tags"], json!(r#"["a","b"]"#));
    assert_eq!(back[0]["paid"], json!("true"));
    assert_eq!(back[0]["total"], json!(19.5));
    assert_eq!(back[0]["note"], Value::Null);
    assert_eq!(back[1]["name"], json!("Line\nbreak"));
    assert_eq!(back[1]["note"], json!("x"));
    assert!(temp_files(&dir.path().join("exports")).is_empty());
}

#[tokio::test]
async fn json_and_ndjson_round_trips_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    for (format, file) in [("json", "out.json"), ("ndjson", "out.ndjson")] {
        let conn = file_conn("data", format);
        write(&conn, &ctx, file, WriteMode::Replace, &[sample()])
            .await
            .unwrap();
        let back = read(&conn, &ctx, file).await.unwrap();
        assert_eq!(back, sample(), "{format}");
    }
    let json_text = std::fs::read_to_string(dir.path().join("data/out.json")).unwrap();
    let parsed: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(parsed.as_array().map(Vec::len), Some(2));
    // An empty run still writes a valid file.
    let conn = file_conn("data", "json");
    write(&conn, &ctx, "empty.json", WriteMode::Replace, &[])
        .await
        .unwrap();
    assert_eq!(read(&conn, &ctx, "empty.json").await.unwrap(), vec![]);
}

#[tokio::test]
async fn nested_json_files_are_flattened_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let items: Vec<Value> = (0..2500)
        .map(|i| json!({"id": i, "customer": {"name": format!("c{i}")}}))
        .collect();
    std::fs::write(
        dir.path().join("in/big.json"),
        serde_json::to_vec(&items).unwrap(),
    )
    .unwrap();
    let conn = file_conn("in", "json");
    let mut source = open_source(
        &conn,
        &SourceSpec::Resource("big.json".into()),
        &ctx(dir.path()),
    )
    .await
    .unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        sizes.push(batch.len());
        assert!(batch[0].contains_key("customer.name"));
    }
    assert_eq!(sizes, [1000, 1000, 500]);

    std::fs::write(dir.path().join("in/bad.json"), br#"{"not": "an array"}"#).unwrap();
    let err = read(&conn, &ctx(dir.path()), "bad.json").await.unwrap_err();
    assert!(err.to_string().contains("array"), "{err}");

    std::fs::write(
        dir.path().join("in/lines.ndjson"),
        b"{\"a\":{\"b\":1}}\n\n{\"a\":{\"b\":2}}\nnot json\n",
    )
    .unwrap();
    let conn = file_conn("in", "ndjson");
    let err = read(&conn, &ctx(dir.path()), "lines.ndjson")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("line 4"), "{err}");
}

#[tokio::test]
async fn csv_append_keeps_header_and_widens_for_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let conn = file_conn("out", "csv");
    let first = vec![rec(json!({"id": 1, "name": "a"}))];
    write(
        &conn,
        &ctx,
        "log.csv",
        WriteMode::Append,
        std::slice::from_ref(&first),
    )
    .await
    .unwrap();
    write(
        &conn,
        &ctx,
        "log.csv",
        WriteMode::Append,
        std::slice::from_ref(&first),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/log.csv")).unwrap();
    assert_eq!(text, "id,name\n1,a\n1,a\n");

    // A later batch with a new column: header extended, earlier rows padded.
    let second = vec![rec(json!({"id": 2, "extra": "x"}))];
    write(&conn, &ctx, "log.csv", WriteMode::Append, &[first, second])
        .await
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/log.csv")).unwrap();
    assert_eq!(text, "id,name,extra\n1,a,\n1,a,\n1,a,\n2,,x\n");
    let back = read(&conn, &ctx, "log.csv").await.unwrap();
    assert_eq!(back.len(), 4);
    assert_eq!(back[3]["extra"], json!("x"));
    assert_eq!(back[3]["name"], Value::Null);
}

#[tokio::test]
async fn json_and_ndjson_append_merge() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    for (format, file) in [("json", "a.json"), ("ndjson", "a.ndjson")] {
        let conn = file_conn("out", format);
        write(
            &conn,
            &ctx,
            file,
            WriteMode::Append,
            &[vec![rec(json!({"id": 1}))]],
        )
        .await
        .unwrap();
        write(
            &conn,
            &ctx,
            file,
            WriteMode::Append,
            &[vec![rec(json!({"id": 2})), rec(json!({"id": 3}))]],
        )
        .await
        .unwrap();
        let ids: Vec<Value> = read(&conn, &ctx, file)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!(1), json!(2), json!(3)], "{format}");
    }
}

#[tokio::test]
async fn replace_overwrites_and_failed_runs_leave_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let conn = file_conn("out", "csv");
    write(&conn, &ctx, "t.csv", WriteMode::Replace, &[sample()])
        .await
        .unwrap();
    write(
        &conn,
        &ctx,
        "t.csv",
        WriteMode::Replace,
        &[vec![rec(json!({"only": 1}))]],
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/t.csv")).unwrap();
    assert_eq!(text, "only\n1\n");

    // A run that is rolled back, or dropped without commit, leaves the file as it was.
    for explicit in [true, false] {
        let mut destination = open_destination(&conn, &dest("t.csv", WriteMode::Replace), &ctx)
            .await
            .unwrap();
        destination.write_batch(&sample()).await.unwrap();
        if explicit {
            destination.rollback().await.unwrap();
        } else {
            drop(destination);
        }
        let text = std::fs::read_to_string(dir.path().join("out/t.csv")).unwrap();
        assert_eq!(text, "only\n1\n");
        assert!(temp_files(&dir.path().join("out")).is_empty());
    }
}

#[tokio::test]
async fn upsert_and_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let conn = file_conn("out", "csv");
    let spec = DestinationSpec {
        target: "x.csv".into(),
        mode: WriteMode::Upsert,
        key: vec!["id".into()],
    };
    let err = open_destination(&conn, &spec, &ctx).await.err().unwrap();
    assert!(matches!(err, ConnectorError::Config(_)));
    assert!(err
        .to_string()
        .contains("upsert needs a database destination"));
    let err = open_source(&conn, &SourceSpec::Query("SELECT 1".into()), &ctx)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectorError::Config(_)));
}

#[tokio::test]
async fn paths_cannot_leave_the_tenant_folder() {
    let root = tempfile::tempdir().unwrap();
    let tenant = root.path().join("tenants/a");
    std::fs::create_dir_all(&tenant).unwrap();
    std::fs::create_dir_all(root.path().join("tenants/b")).unwrap();
    std::fs::write(root.path().join("tenants/b/secret.csv"), "x\n1\n").unwrap();
    let ctx = ctx(&tenant);
    let outside = root.path().join("tenants/b").to_string_lossy().into_owned();
    for path in ["../b", "/etc", "x/../../b", outside.as_str()] {
        let conn = file_conn(path, "csv");
        let err = read(&conn, &ctx, "secret.csv").await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{path}: {err}");
        assert!(err.to_string().contains("refused"), "{err}");
        let err = open_destination(&conn, &dest("x.csv", WriteMode::Replace), &ctx)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ConnectorError::Config(_)), "{path}");
    }
    // File names cannot climb either.
    let conn = file_conn("in", "csv");
    for name in ["../../b/secret.csv", "../x.csv", "..", "a/b.csv"] {
        let err = read(&conn, &ctx, name).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{name}");
    }
    // A symbolic link inside the folder that points outside is refused.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.path().join("tenants/b"), tenant.join("link")).unwrap();
        let conn = file_conn("link", "csv");
        let err = read(&conn, &ctx, "secret.csv").await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{err}");
    }
    // Absolute paths inside the folder are fine.
    let inside = tenant.join("in").to_string_lossy().into_owned();
    let conn = file_conn(&inside, "csv");
    write(&conn, &ctx, "ok.csv", WriteMode::Replace, &[sample()])
        .await
        .unwrap();
    assert!(tenant.join("in/ok.csv").is_file());
}

#[tokio::test]
async fn globs_read_matching_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("b.csv"), "id,src\n3,b\n").unwrap();
    std::fs::write(inbox.join("a.csv"), "id,src\n1,a\n2,a\n").unwrap();
    std::fs::write(inbox.join("c.txt"), "id\n9\n").unwrap();
    std::fs::write(inbox.join(".hidden.csv"), "id\n8\n").unwrap();
    let conn = file_conn("inbox", "csv");
    let ids: Vec<Value> = read(&conn, &ctx(dir.path()), "*.csv")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    assert_eq!(
        read(&conn, &ctx(dir.path()), "*.none").await.unwrap(),
        vec![]
    );
    let err = read(&conn, &ctx(dir.path()), "missing.csv")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn csv_reading_rules() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("x.csv"),
        "\u{feff}id,zip,,amount\n1,0150,z,1.50\n2,,,\n3\n",
    )
    .unwrap();
    let conn = file_conn("in", "csv");
    let rows = read(&conn, &ctx(dir.path()), "x.csv").await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], json!(1));
    assert_eq!(rows[0]["zip"], json!("0150"));
    assert_eq!(rows[0]["column_3"], json!("z"));
    assert_eq!(rows[0]["amount"], json!(1.5));
    assert_eq!(rows[1]["zip"], Value::Null);
    assert_eq!(rows[2]["amount"], Value::Null);

    std::fs::write(inbox.join("wide.csv"), "a,b\n1,2,3\n").unwrap();
    let err = read(&conn, &ctx(dir.path()), "wide.csv").await.unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[tokio::test]
async fn test_connection_describes_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let conn = file_conn("exports", "csv");
    let text = test_connection(&conn, &ctx(dir.path())).await.unwrap();
    assert!(text.contains("does not exist yet"), "{text}");
    std::fs::create_dir_all(dir.path().join("exports")).unwrap();
    std::fs::write(dir.path().join("exports/a.csv"), "x\n").unwrap();
    let text = test_connection(&conn, &ctx(dir.path())).await.unwrap();
    assert!(text.contains("1 .csv file"), "{text}");
    let err = test_connection(&file_conn("../x", "csv"), &ctx(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Config(_)));
    let err = test_connection(&file_conn("x", "xml"), &ctx(dir.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("format"));
}

#[cfg(unix)]
#[tokio::test]
async fn files_reached_through_links_are_never_read() {
    let tenant = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("passwd.csv");
    std::fs::write(&secret, "user,hash\nroot,s3cret\n").unwrap();
    std::fs::create_dir_all(tenant.path().join("in")).unwrap();
    std::os::unix::fs::symlink(&secret, tenant.path().join("in/pw.csv")).unwrap();
    let ctx = ctx(tenant.path());
    let conn = file_conn("in", "csv");

    // Reading the link, alone or through a glob.
    let error = open_source(&conn, &SourceSpec::Resource("pw.csv".into()), &ctx)
        .await
        .map(|_| ())
        .err();
    let read_error = match error {
        Some(error) => error,
        None => {
            let mut source = open_source(&conn, &SourceSpec::Resource("pw.csv".into()), &ctx)
                .await
                .unwrap();
            source
                .next_batch()
                .await
                .expect_err("a link is not followed")
        }
    };
    assert!(!read_error.to_string().contains("s3cret"), "{read_error}");
    let mut source = open_source(&conn, &SourceSpec::Resource("*.csv".into()), &ctx)
        .await
        .unwrap();
    assert!(
        source.next_batch().await.unwrap().is_none(),
        "globs skip links"
    );

    // Appending to the link would copy the linked file into the tenant's folder.
    let error = write(
        &conn,
        &ctx,
        "pw.csv",
        WriteMode::Append,
        &[vec![rec(json!({"user": "x"}))]],
    )
    .await
    .expect_err("append through a link");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "user,hash\nroot,s3cret\n"
    );

    // A linked folder is refused as a connection path.
    std::os::unix::fs::symlink(outside.path(), tenant.path().join("out")).unwrap();
    let error = open_source(
        &file_conn("out", "csv"),
        &SourceSpec::Resource("passwd.csv".into()),
        &ctx,
    )
    .await
    .map(|_| ())
    .expect_err("linked folder");
    assert!(error.to_string().contains("symbolic link"), "{error}");
}

#[tokio::test]
async fn a_file_output_marker_tells_whether_the_rename_happened() {
    use workspace::connectors::{find_marker, forget_marker, RunMarker};
    let tenant = tempfile::tempdir().unwrap();
    let ctx = ctx(tenant.path());
    let conn = file_conn("out", "csv");
    let spec = dest("orders.csv", WriteMode::Replace);
    let mut destination = open_destination(&conn, &spec, &ctx).await.unwrap();
    destination
        .write_batch(&[rec(json!({"id": 1}))])
        .await
        .unwrap();
    destination.set_marker(RunMarker {
        token: "t1".into(),
        flow: "export".into(),
        rows_written: 1,
    });
    destination.commit().await.unwrap();
    assert_eq!(
        find_marker(&conn, &spec, "t1", &ctx).await.unwrap(),
        Some(1)
    );
    forget_marker(&conn, &spec, "t1", &ctx).await;
    assert_eq!(find_marker(&conn, &spec, "t1", &ctx).await.unwrap(), None);
    let hidden = std::fs::read_dir(tenant.path().join("out"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(hidden, 0, "the marker and the temporary file are gone");

    // A crash between the marker and the rename: the temporary file is still there, so the
    // output was not replaced; looking removes both.
    let folder = tenant.path().join("out");
    std::fs::write(folder.join(".orders.csv.999-1.tmp"), "id\n2\n").unwrap();
    std::fs::write(
        folder.join(".orders.csv.t2.run"),
        r#"{"temp": ".orders.csv.999-1.tmp", "rows_written": 1, "flow": "export"}"#,
    )
    .unwrap();
    assert_eq!(find_marker(&conn, &spec, "t2", &ctx).await.unwrap(), None);
    assert!(!folder.join(".orders.csv.999-1.tmp").exists());
    assert!(!folder.join(".orders.csv.t2.run").exists());
    assert_eq!(
        std::fs::read_to_string(folder.join("orders.csv")).unwrap(),
        "id\n1\n"
    );
}
