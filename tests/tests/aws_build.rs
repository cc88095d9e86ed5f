//! EC2 builds against moto: the happy path end to end, dry run, IAM
//! actions, AMI name uniqueness.

mod aws_support;

use std::sync::atomic::Ordering;

use aws_support::*;
use image_aws::aws_sdk_ec2::types::{Filter, ImageAttributeName, SnapshotAttributeName};
use image_aws::*;

#[tokio::test]
async fn builds_an_ami_copies_it_and_cleans_up() {
    let env = Env::start().await;
    let before = env.census().await;
    let mut req = request("happy");
    req.ami_users = vec!["111122223333".into()];
    req.ami_groups = vec!["all".into()];
    req.snapshot_users = vec!["111122223333".into()];
    req.run_uuid = Some("run-1".into());
    req.custom_data.insert("k8s".into(), "1.30.2".into());
    let hook = RecordingHook::default();
    let events = CancelOn::never();
    let res = build(&env.ec2, &req, &hook.hook(), &events, CancelToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    assert!(hook.targets.lock().unwrap()[0].contains("not connected"));
    // Nothing to untag at the end; the temporary group goes in the default VPC.
    assert_eq!(env.proxy.calls("DeleteTags"), 0);
    assert_eq!(env.proxy.calls("DescribeVpcs"), 0);
    assert_eq!(
        res.source.image_id, NEWEST_NOBLE,
        "most recent x86_64 match"
    );
    assert_eq!(res.amis.len(), 4, "{:?}", res.amis);
    for r in all_regions() {
        assert!(res.amis.contains_key(&r), "no AMI in {r}");
    }

    // In moto: one AMI per region, with our tags and permissions, never tagged temporary.
    for (region, ami) in &res.amis {
        let c = env.direct.client(region);
        let imgs = c.describe_images().image_ids(ami).send().await.unwrap();
        let img = &imgs.images()[0];
        assert_eq!(img.name(), Some("happy-ami-1"));
        let tags: std::collections::BTreeMap<_, _> = img
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        assert_eq!(
            tags.get("kubernetes-version").map(String::as_str),
            Some("1.30.2"),
            "{region}: {tags:?}"
        );
        assert_eq!(
            tags.get(cleanup::TAG_BUILD_ID),
            Some(&res.build_id),
            "{region}"
        );
        assert!(
            !tags.contains_key(cleanup::TAG_TEMPORARY),
            "{region}: {tags:?}"
        );
        let perms = c
            .describe_image_attribute()
            .image_id(ami)
            .attribute(ImageAttributeName::LaunchPermission)
            .send()
            .await
            .unwrap();
        let users: Vec<_> = perms
            .launch_permissions()
            .iter()
            .filter_map(|p| p.user_id())
            .collect();
        let groups: Vec<_> = perms
            .launch_permissions()
            .iter()
            .filter_map(|p| p.group().map(|g| g.as_str().to_string()))
            .collect();
        assert_eq!(users, ["111122223333"], "{region}");
        assert_eq!(groups, ["all"], "{region}");
        let snaps = &res.images[region].snapshots;
        assert!(!snaps.is_empty(), "{region}: no snapshots");
        for s in snaps {
            let a = c
                .describe_snapshot_attribute()
                .snapshot_id(s)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .unwrap();
            let u: Vec<_> = a
                .create_volume_permissions()
                .iter()
                .filter_map(|p| p.user_id())
                .collect();
            assert_eq!(u, ["111122223333"], "{region} {s}");
            let st = c.describe_snapshots().snapshot_ids(s).send().await.unwrap();
            let stags: Vec<_> = st.snapshots()[0]
                .tags()
                .iter()
                .filter_map(|t| t.key())
                .collect();
            assert!(stags.contains(&"purpose"), "{region} {s}: {stags:?}");
            assert!(
                !stags.contains(&cleanup::TAG_TEMPORARY),
                "{region} {s}: {stags:?}"
            );
        }
    }

    // Nothing temporary left: no live instance, no key pair, no extra group.
    let after = env.census().await;
    let new = after.minus(&before);
    new.assert_no_temporaries();
    assert_eq!(new.images.len(), 4);
    let left = env.leftovers().await;
    assert!(left.is_empty(), "{left:?}");

    // The instance ran with the requested settings and is terminated.
    let c = env.direct.client(REGION);
    let o = c
        .describe_instances()
        .instance_ids(&res.instance_id)
        .send()
        .await
        .unwrap();
    let inst = &o.reservations()[0].instances()[0];
    assert_eq!(inst.state().unwrap().name().unwrap().as_str(), "terminated");
    assert_eq!(inst.image_id(), Some(NEWEST_NOBLE));

    // Events name every step in order; the source AMI, key pair and
    // security group steps run at once and finish in any order.
    let mut steps: Vec<String> = events
        .steps_finished()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    steps[1..4].sort();
    assert_eq!(
        steps,
        [
            "validate",
            "key_pair",
            "security_group",
            "source_ami",
            "instance",
            "connect",
            "provision",
            "stop",
            "image",
            "copy",
            "permissions",
            "deprecate",
            "finalize",
            "cleanup"
        ]
    );

    // Manifest, packer-compatible, appended.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    manifest::append(&path, manifest::ManifestBuild::from_result(&res)).unwrap();
    manifest::append(&path, manifest::ManifestBuild::from_result(&res)).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["builds"].as_array().unwrap().len(), 2);
    assert_eq!(v["last_run_uuid"], "run-1");
    let b = &v["builds"][0];
    assert_eq!(b["builder_type"], "amazon-ebs");
    assert_eq!(b["custom_data"]["k8s"], "1.30.2");
    let artifact = b["artifact_id"].as_str().unwrap();
    assert_eq!(artifact.split(',').count(), 4);
    assert!(artifact.contains(&format!("us-east-1:{}", res.amis["us-east-1"])));
    let table = image_aws::ami_table::markdown_table(&res);
    assert!(
        table.contains(&format!("| eu-west-1 | {} |", res.amis["eu-west-1"])),
        "{table}"
    );
}

#[tokio::test]
async fn existing_ami_name_fails_fast_unless_force_deregister() {
    let env = Env::start().await;
    let mut req = request("dup");
    req.ami_regions = AmiRegions::List(vec!["us-west-2".into()]);
    let hook = RecordingHook::default();
    let first = env
        .build(&req, &hook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let before = env.census().await;
    let err = env.build(&req, &hook).await.unwrap_err();
    assert_eq!(err.step, Step::SourceAmi, "{err}");
    assert!(matches!(err.error, StepError::NameTaken { .. }), "{err}");
    assert!(err.to_string().contains("force_deregister"), "{err}");
    assert_eq!(env.census().await, before, "nothing created");

    req.force_deregister = true;
    let second = env
        .build(&req, &hook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (region, old) in &first.amis {
        let c = env.direct.client(region);
        let o = c
            .describe_images()
            .owners("self")
            .filters(Filter::builder().name("name").values("dup-ami-1").build())
            .send()
            .await
            .unwrap();
        let ids: Vec<_> = o.images().iter().filter_map(|i| i.image_id()).collect();
        assert_eq!(
            ids,
            [second.amis[region].as_str()],
            "{region}: old {old} gone"
        );
        for s in &first.images[region].snapshots {
            let r = c.describe_snapshots().snapshot_ids(s).send().await;
            assert!(
                r.is_err() || r.unwrap().snapshots().is_empty(),
                "{region}: snapshot {s} of the old AMI deleted"
            );
        }
    }
}

#[tokio::test]
async fn dry_run_resolves_and_changes_nothing() {
    let env = Env::start().await;
    let before = env.census().await;
    let req = request("plan");
    let plan = dry_run(&env.ec2, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.source.image_id, NEWEST_NOBLE);
    assert_eq!(plan.root_device_name, "/dev/sda1");
    assert_eq!(
        plan.would_create.len(),
        2 + 1 + 1 + 3,
        "{:#?}",
        plan.would_create
    );
    assert!(plan.actions.contains("ec2:CopyImage"));
    assert_eq!(env.census().await, before);

    let mut bad = request("plan-bad");
    bad.ami_regions = AmiRegions::List(vec!["xx-nowhere-1".into()]);
    let err = dry_run(&env.ec2, &bad).await.unwrap_err();
    assert!(err.to_string().contains("xx-nowhere-1"), "{err}");
}

#[test]
fn required_actions_follow_the_settings() {
    let mut req = request("iam");
    let a = required_actions(&req);
    for x in [
        "ec2:DescribeImages",
        "ec2:ImportKeyPair",
        "ec2:DeleteKeyPair",
        "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:DeleteSecurityGroup",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:CreateImage",
        "ec2:CopyImage",
        "ec2:CreateTags",
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
    ] {
        assert!(a.contains(x), "{x} missing from {a:?}");
    }
    assert!(!a.contains("ec2:ModifyImageAttribute"));
    assert!(!a.contains("ec2:EnableImageDeprecation"));
    // AMIs are never tagged temporary, so never untagged.
    assert!(!a.contains("ec2:DeleteTags"));
    req.ami_users = vec!["1".into()];
    req.deprecate_at = Some("2030-01-01T00:00:00Z".into());
    req.key_pair = KeyPairSpec::Existing {
        name: "mine".into(),
        private_key_file: "/nonexistent".into(),
    };
    req.security_group = SecurityGroupSpec::Ids(vec!["sg-1".into()]);
    req.ami_regions = AmiRegions::default();
    let a = required_actions(&req);
    assert!(a.contains("ec2:ModifyImageAttribute"));
    assert!(a.contains("ec2:EnableImageDeprecation"));
    assert!(!a.contains("ec2:ImportKeyPair"));
    assert!(!a.contains("ec2:CreateSecurityGroup"));
    assert!(!a.contains("ec2:CopyImage"));
}
