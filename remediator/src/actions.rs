//! The closed set of actions and their fixed argv.
//!
//! Nothing from an alert ever reaches an argv: the only variable parts are the standby host
//! (`init_standby`) and the standby data directory (`activate_standby`), both taken from the
//! policy. `-a` is always passed because the tools' prompts default to No.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Recover,
    RecoverFull,
    Rebalance,
    StartStandby,
    InitStandby,
    ActivateStandby,
}

/// Inputs an argv may need, all from the policy (never from labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgvInputs<'a> {
    pub standby_host: Option<&'a str>,
    pub standby_datadir: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} needs {missing} from the policy")]
pub struct MissingInput {
    pub action: ActionKind,
    pub missing: &'static str,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::Recover,
        ActionKind::RecoverFull,
        ActionKind::Rebalance,
        ActionKind::StartStandby,
        ActionKind::InitStandby,
        ActionKind::ActivateStandby,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Recover => "recover",
            ActionKind::RecoverFull => "recover_full",
            ActionKind::Rebalance => "rebalance",
            ActionKind::StartStandby => "start_standby",
            ActionKind::InitStandby => "init_standby",
            ActionKind::ActivateStandby => "activate_standby",
        }
    }

    /// Actions a policy can never make automatic.
    pub fn never_automatic(self) -> bool {
        matches!(self, ActionKind::RecoverFull | ActionKind::ActivateStandby)
    }

    /// Actions that run `gprecoverseg` (and so take its lock).
    pub fn runs_gprecoverseg(self) -> bool {
        matches!(
            self,
            ActionKind::Recover | ActionKind::RecoverFull | ActionKind::Rebalance
        )
    }

    /// Actions that act on the segment tier (targets are segment dbids).
    pub fn acts_on_segments(self) -> bool {
        self.runs_gprecoverseg()
    }

    /// `activate_standby` runs on the standby host; everything else on the coordinator's.
    pub fn runs_on_standby_host(self) -> bool {
        self == ActionKind::ActivateStandby
    }

    pub fn argv(self, inputs: &ArgvInputs<'_>) -> Result<Vec<String>, MissingInput> {
        let missing = |missing| MissingInput {
            action: self,
            missing,
        };
        let fixed = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();
        Ok(match self {
            ActionKind::Recover => fixed(&["gprecoverseg", "-a"]),
            ActionKind::RecoverFull => fixed(&["gprecoverseg", "-aF"]),
            ActionKind::Rebalance => fixed(&["gprecoverseg", "-ar"]),
            ActionKind::StartStandby => fixed(&["gpinitstandby", "-n", "-a"]),
            ActionKind::InitStandby => {
                let host = inputs.standby_host.ok_or(missing("standby.host"))?;
                vec![
                    "gpinitstandby".into(),
                    "-a".into(),
                    "-s".into(),
                    host.to_string(),
                ]
            }
            ActionKind::ActivateStandby => {
                let dir = inputs.standby_datadir.ok_or(missing("standby.datadir"))?;
                vec![
                    "gpactivatestandby".into(),
                    "-a".into(),
                    "-d".into(),
                    dir.to_string(),
                ]
            }
        })
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_argv_per_action() {
        let none = ArgvInputs::default();
        assert_eq!(
            ActionKind::Recover.argv(&none).expect("argv"),
            ["gprecoverseg", "-a"]
        );
        assert_eq!(
            ActionKind::RecoverFull.argv(&none).expect("argv"),
            ["gprecoverseg", "-aF"]
        );
        assert_eq!(
            ActionKind::Rebalance.argv(&none).expect("argv"),
            ["gprecoverseg", "-ar"]
        );
        assert_eq!(
            ActionKind::StartStandby.argv(&none).expect("argv"),
            ["gpinitstandby", "-n", "-a"]
        );
        let inputs = ArgvInputs {
            standby_host: Some("smdw"),
            standby_datadir: Some("/data/standby"),
        };
        assert_eq!(
            ActionKind::InitStandby.argv(&inputs).expect("argv"),
            ["gpinitstandby", "-a", "-s", "smdw"]
        );
        assert_eq!(
            ActionKind::ActivateStandby.argv(&inputs).expect("argv"),
            ["gpactivatestandby", "-a", "-d", "/data/standby"]
        );
    }

    #[test]
    fn standby_actions_need_policy_inputs() {
        let none = ArgvInputs::default();
        assert!(ActionKind::InitStandby.argv(&none).is_err());
        assert!(ActionKind::ActivateStandby.argv(&none).is_err());
    }
}
