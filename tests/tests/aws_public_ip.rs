//! The temporary security group without source CIDRs: SSH is opened to this
//! machine's public address only, learned from a "what is my IP" service
//! (here a local HTTP server standing in for checkip.amazonaws.com) before
//! any EC2 call; when it cannot be learned, nothing is called and the error
//! says which CIDRs to set.

mod aws_support;
mod bed_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_support::*;
use image_aws::aws_sdk_ec2::types::IpPermission;
use image_aws::*;
use image_core::events::Event;
use image_core::target::Target;

/// Clients through the fault proxy that learn the public address from `url`.
async fn clients(env: &Env, url: &str) -> Ec2Clients {
    let opts = ClientOptions {
        max_attempts: Some(6),
        initial_backoff: Some(Duration::from_millis(10)),
        standard_retry: true,
        checkip_url: Some(url.to_string()),
        ..Default::default()
    };
    Ec2Clients::for_endpoint(&env.proxy.url(), REGION, &opts).await
}

/// A build request without source CIDRs and without copies.
fn learning_request(name: &str) -> BuildRequest {
    let mut req = request(name);
    req.security_group = SecurityGroupSpec::Temporary {
        source_cidrs: Vec::new(),
    };
    req.ami_regions = AmiRegions::default();
    req
}

/// A URL on 127.0.0.1 where nothing listens.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/")
}

/// The SSH rules (port, IPv4 CIDRs, IPv6 CIDRs) of the build's temporary
/// group, as moto has them while the build runs.
async fn temporary_group_rules(ec2: &Ec2Clients) -> Vec<(i32, Vec<String>, Vec<String>)> {
    let out = ec2
        .client(REGION)
        .describe_security_groups()
        .send()
        .await
        .unwrap();
    let ours: Vec<_> = out
        .security_groups()
        .iter()
        .filter(|g| {
            g.group_name()
                .is_some_and(|n| n.starts_with("image-builder-"))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    ours[0]
        .ip_permissions()
        .iter()
        .map(|p: &IpPermission| {
            (
                p.from_port().unwrap_or_default(),
                p.ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(String::from))
                    .collect(),
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(String::from))
                    .collect(),
            )
        })
        .collect()
}

/// Builds `req` with a hook that records the temporary group's rules.
async fn build_recording_rules(
    env: &Env,
    ec2: &Ec2Clients,
    req: &BuildRequest,
    events: &CancelOn,
) -> (
    Result<BuildResult, BuildError>,
    Vec<(i32, Vec<String>, Vec<String>)>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = seen.clone();
        let direct = Arc::new(
            Ec2Clients::for_endpoint(env.moto.url(), REGION, &ClientOptions::default()).await,
        );
        FnHook(move |_build: String, _target: Arc<dyn Target>| {
            let seen = seen.clone();
            let direct = direct.clone();
            async move {
                *seen.lock().unwrap() = temporary_group_rules(&direct).await;
                Ok(())
            }
        })
    };
    let res = build_with(ec2, req, &hook, &NoConnector, events, CancelToken::new()).await;
    let rules = seen.lock().unwrap().clone();
    (res, rules)
}

fn messages(events: &CancelOn) -> Vec<String> {
    events
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn without_cidrs_ssh_is_opened_to_the_learned_address_only() {
    let env = Env::start().await;
    let before = env.census().await;
    let port = bed_support::serve(b"203.0.113.9\n".to_vec());
    let url = format!("http://127.0.0.1:{port}/");
    let ec2 = clients(&env, &url).await;
    let req = learning_request("learned");

    // The dry run says which address it would allow.
    let plan = dry_run(&ec2, &req).await.unwrap_or_else(|e| panic!("{e}"));
    let group = plan
        .would_create
        .iter()
        .find(|l| l.starts_with("security group"))
        .unwrap_or_else(|| panic!("{:#?}", plan.would_create));
    assert!(
        group.contains("from 203.0.113.9/32 (this machine's public address)"),
        "{group}"
    );

    let events = CancelOn::never();
    let (res, rules) = build_recording_rules(&env, &ec2, &req, &events).await;
    let res = res.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rules,
        [(22, vec!["203.0.113.9/32".to_string()], Vec::new())],
        "port 22 from exactly the learned /32"
    );
    let msgs = messages(&events);
    let want = format!(
        "temporary security group: SSH from 203.0.113.9/32 (this machine's public address, from {url})"
    );
    assert!(msgs.contains(&want), "{msgs:#?}");
    assert_eq!(res.amis.len(), 1);

    // Nothing temporary is left.
    let new = env.census().await.minus(&before);
    new.assert_no_temporaries();
    let left = env.leftovers().await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_ipv6_address_gets_an_ipv6_range() {
    let env = Env::start().await;
    let before = env.census().await;
    let port = bed_support::serve(b"2001:db8::9\n".to_vec());
    let ec2 = clients(&env, &format!("http://127.0.0.1:{port}")).await;
    let mut req = learning_request("learned-v6");
    req.ssh.port = 2222;
    let events = CancelOn::never();
    let (res, rules) = build_recording_rules(&env, &ec2, &req, &events).await;
    res.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rules,
        [(2222, Vec::new(), vec!["2001:db8::9/128".to_string()])]
    );
    env.census().await.minus(&before).assert_no_temporaries();
}

#[tokio::test]
async fn an_unknown_address_fails_before_any_ec2_call() {
    let env = Env::start().await;
    let url = closed_url();
    let ec2 = clients(&env, &url).await;
    let req = learning_request("unlearned");
    env.moto.start_recording().unwrap();

    let events = CancelOn::never();
    // A build and a test instance, neither provisioning nor connecting.
    let (hook, conn) = (&NoProvisioning, &NoConnector);
    let err = build_with(&ec2, &req, hook, conn, &events, CancelToken::new())
        .await
        .unwrap_err();
    let test_err = test_instance(&ec2, &req, hook, conn, &events, CancelToken::new())
        .await
        .unwrap_err();
    let dry_err = dry_run(&ec2, &req).await.unwrap_err();

    env.moto.stop_recording().unwrap();
    let calls = env.moto.recorded_actions().unwrap();
    assert!(calls.is_empty(), "EC2 was called: {calls:?}");
    for e in [&err, &test_err, &dry_err] {
        let msg = e.to_string();
        assert_eq!(e.step, Step::SecurityGroup, "{msg}");
        assert!(e.left.is_empty(), "{msg}");
        assert!(
            msg.contains(&format!(
                "could not learn this machine's public address from {url} ("
            )),
            "{msg}"
        );
        assert!(
            msg.contains("set `temporary_security_group_source_cidrs` (or `--ssh-source-cidr`)"),
            "{msg}"
        );
    }
    assert!(
        events.steps_finished().is_empty(),
        "{:?}",
        events.steps_finished()
    );

    // The recorder does see calls: the same dry run with CIDRs makes some.
    env.moto.start_recording().unwrap();
    let mut given = req.clone();
    given.security_group = SecurityGroupSpec::Temporary {
        source_cidrs: vec!["198.51.100.7/32".into()],
    };
    dry_run(&ec2, &given)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    let calls = env.moto.recorded_actions().unwrap();
    assert!(calls.contains(&"DescribeImages".to_string()), "{calls:?}");
}

#[tokio::test]
async fn given_cidrs_learn_nothing() {
    let env = Env::start().await;
    // Learning would fail: a build that does not learn succeeds.
    let ec2 = clients(&env, &closed_url()).await;
    let mut req = learning_request("given");
    req.security_group = SecurityGroupSpec::Temporary {
        source_cidrs: vec!["198.51.100.0/24".into()],
    };
    let events = CancelOn::never();
    let (res, rules) = build_recording_rules(&env, &ec2, &req, &events).await;
    res.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rules,
        [(22, vec!["198.51.100.0/24".to_string()], Vec::new())]
    );
    let msgs = messages(&events);
    assert!(
        !msgs.iter().any(|m| m.contains("public address")),
        "{msgs:#?}"
    );
}
