//! The subsystem registry against a real server started the way `lienthong up` starts it: the
//! server configuration it actually uses, the streams provisioning made, the schemas folder
//! and the replay service's read models all agree with it — and every adapter role can
//! publish exactly its own subsystem.

mod common;

use common::Bus;

#[tokio::test]
async fn the_registry_agrees_with_the_running_server_the_schemas_and_the_read_models() {
    let bus = Bus::start().await;
    let problems = lienthong::crosscheck::check_all(
        &bus.js("operator").await,
        bus.server.data_dir(),
        &bus.registry,
    )
    .await
    .unwrap();
    assert_eq!(problems, Vec::<String>::new());
}

#[tokio::test]
async fn every_subsystem_s_adapter_publishes_its_own_stream_and_no_other() {
    let bus = Bus::start().await;
    let subsystems = lienthong_bus::registry::SUBSYSTEMS;
    let mut attempts = Vec::new();
    for s in subsystems {
        // A refused publish is never acknowledged: a short time-out tells it.
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(std::time::Duration::from_millis(700))
            .build(bus.client(&s.adapter_role()).await);
        for target in subsystems {
            let js = js.clone();
            let subject = format!("egov.{}.x.k.happened", target.name);
            let (role, own) = (s.adapter_role(), s.name == target.name);
            attempts.push(async move {
                let stored = match js.publish(subject.clone(), "{}".into()).await {
                    Ok(f) => f.await.is_ok(),
                    Err(_) => false,
                };
                (role, subject, own, stored)
            });
        }
    }
    for (role, subject, own, stored) in futures::future::join_all(attempts).await {
        assert_eq!(stored, own, "{role} publishing {subject}");
    }
    for s in subsystems {
        assert_eq!(bus.messages(s.stream).await, 1, "{}", s.stream);
    }
}
