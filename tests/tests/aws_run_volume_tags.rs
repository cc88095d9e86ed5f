//! `run_volume_tags` (packer's name; `volume_tags` in the request): the
//! instance's volumes are tagged at launch, in RunInstances' volume tag
//! specification (the request moto received), with our bookkeeping tags.

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
