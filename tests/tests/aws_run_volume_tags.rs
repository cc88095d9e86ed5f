//! `run_volume_tags` (packer's name; `volume_tags` in the request): the
//! instance's volumes are tagged at launch, in RunInstances' volume tag
//! specification (the request moto received), with our bookkeeping tags.
//! `snapshot_tags`: the AMI's snapshots in the build region (CreateTags
//! once the image is available: moto's CreateImage takes no snapshot tag
//! specification) and the copy's (CopyImage's snapshot tag
//! specification), as moto received them and as it keeps them.

mod aws_support;

use aws_support::*;

#[tokio::test]
async fn launch_volumes_get_the_run_volume_tags() {
    let env = Env::start().await;
    let mut req = request("volume-tags");
    req.ami_regions = image_aws::AmiRegions::default();
    req.volume_tags.insert("team".into(), "nodes".into());
    env.moto.start_recording().unwrap();
    env.build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    let bodies = recorded_bodies(&env.moto, "RunInstances");
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let body = &bodies[0];
    // The tag specification whose resource type is `volume` holds the tag.
    let pairs: Vec<(&str, &str)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let spec = pairs
        .iter()
        .find(|(k, v)| {
            k.starts_with("TagSpecification.") && k.ends_with(".ResourceType") && *v == "volume"
        })
        .map(|(k, _)| k.trim_end_matches("ResourceType").to_string())
        .unwrap_or_else(|| panic!("no volume tag specification: {body}"));
    let tag_of = |key: &str| {
        let k = pairs
            .iter()
            .find(|(k, v)| k.starts_with(&spec) && k.ends_with(".Key") && *v == key)
            .map(|(k, _)| k.trim_end_matches("Key").to_string())?;
        pairs
            .iter()
            .find(|(kk, _)| *kk == format!("{k}Value"))
            .map(|(_, v)| v.to_string())
    };
    assert_eq!(tag_of("team").as_deref(), Some("nodes"), "{body}");
    assert_eq!(
        tag_of("image-builder%3Atemporary").as_deref(),
        Some("true"),
        "{body}"
    );
}

/// The value of form key `key` in `body`.
fn param<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn the_amis_snapshots_get_the_snapshot_tags_in_every_region() {
    let env = Env::start().await;
    let mut req = request("snapshot-tags");
    req.ami_regions = image_aws::AmiRegions::List(vec!["us-west-2".into()]);
    req.snapshot_tags.clear();
    req.snapshot_tags.insert("team".into(), "nodes".into());
    env.moto.start_recording().unwrap();
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    // Build region: CreateTags on the AMI's snapshots.
    let home = &res.images[REGION];
    assert!(!home.snapshots.is_empty());
    let tagged: Vec<String> = recorded_bodies(&env.moto, "CreateTags")
        .into_iter()
        .filter(|b| home.snapshots.iter().any(|s| b.contains(&format!("={s}"))))
        .collect();
    assert_eq!(tagged.len(), 1, "{tagged:#?}");
    assert_eq!(
        param(&tagged[0], "Tag.1.Key"),
        Some("team"),
        "{}",
        tagged[0]
    );
    assert_eq!(
        param(&tagged[0], "Tag.1.Value"),
        Some("nodes"),
        "{}",
        tagged[0]
    );
    // The copy: CopyImage's snapshot tag specification.
    let copies = recorded_bodies(&env.moto, "CopyImage");
    assert_eq!(copies.len(), 1, "{copies:#?}");
    let spec = (1..=2)
        .find(|i| {
            param(&copies[0], &format!("TagSpecification.{i}.ResourceType")) == Some("snapshot")
        })
        .unwrap_or_else(|| panic!("no snapshot tag specification: {}", copies[0]));
    assert_eq!(
        param(&copies[0], &format!("TagSpecification.{spec}.Tag.1.Key")),
        Some("team"),
        "{}",
        copies[0]
    );

    // What moto keeps: the tag on every snapshot of both AMIs.
    for (region, img) in &res.images {
        let c = env.direct.client(region);
        for s in &img.snapshots {
            let o = c.describe_snapshots().snapshot_ids(s).send().await.unwrap();
            let tags: Vec<(&str, &str)> = o.snapshots()[0]
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value()?)))
                .collect();
            assert!(tags.contains(&("team", "nodes")), "{region} {s}: {tags:?}");
        }
    }
}
