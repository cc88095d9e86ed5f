//! `imds_support: v2.0` (packer's option): every AMI of the build, the
//! build region's and its copy, gets ModifyImageAttribute `ImdsSupport`
//! `v2.0` (the request moto received); without the setting no such call is
//! made. moto 5.2.5 accepts the call but keeps no IMDS attribute, so the
//! resulting attribute cannot be read back there.

mod aws_support;

use aws_support::*;
use image_aws::*;

fn modify_image_attribute_bodies(moto: &image_testbed::Moto) -> Vec<String> {
    recorded_bodies(moto, "ModifyImageAttribute")
}

#[tokio::test]
async fn imds_support_v2_is_set_on_every_ami() {
    let env = Env::start().await;
    let mut req = request("imds");
    req.ami_regions = AmiRegions::List(vec!["us-west-2".into()]);
    req.ami_options.imds_support = Some(ami_options::ImdsSupport::V2);
    assert!(required_actions(&req).contains("ec2:ModifyImageAttribute"));

    env.moto.start_recording().unwrap();
    let events = CancelOn::never();
    let res = build(
        &env.ec2,
        &req,
        &RecordingHook::default().hook(),
        &events,
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    let bodies = modify_image_attribute_bodies(&env.moto);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    for (region, ami) in &res.amis {
        assert!(
            bodies
                .iter()
                .any(|b| b.contains(&format!("ImageId={ami}"))
                    && b.contains("ImdsSupport.Value=v2.0")),
            "{region} {ami}: {bodies:#?}"
        );
    }
    let steps: Vec<String> = events
        .steps_finished()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(steps.contains(&"imds_support".to_string()), "{steps:?}");

    // Unset: no call, no step, no action in the policy.
    let mut plain = request("imds-unset");
    plain.ami_regions = AmiRegions::default();
    assert!(!required_actions(&plain).contains("ec2:ModifyImageAttribute"));
    env.moto.start_recording().unwrap();
    env.build(&plain, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    assert!(modify_image_attribute_bodies(&env.moto).is_empty());
}

#[test]
fn only_v2_is_accepted() {
    // The value is typed (image-core's `ImdsSupport`): a request with
    // another one does not even parse.
    let mut json = serde_json::to_value(request("imds-bad")).unwrap();
    json["ami_options"]["imds_support"] = "v1".into();
    let e = serde_json::from_value::<BuildRequest>(json)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown variant `v1`") && e.contains("v2.0"),
        "{e}"
    );
}
