//! A command's status and the only ways it may move. Pure, so every transition is tested here.

use fieldlink_protocol::AckStage;

/// Where a command is. Forward only; the last four are final.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Stored, not yet handed to the broker (the gateway is offline, or publishing is under way).
    Pending,
    /// Handed to the broker for the gateway.
    Sent,
    /// The agent journaled it; it will run once.
    Received,
    Executed,
    Failed,
    Rejected,
    /// Its time passed before the agent had it, or the agent got it too late.
    Expired,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Sent => "sent",
            CommandStatus::Received => "received",
            CommandStatus::Executed => "executed",
            CommandStatus::Failed => "failed",
            CommandStatus::Rejected => "rejected",
            CommandStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<CommandStatus> {
        [
            CommandStatus::Pending,
            CommandStatus::Sent,
            CommandStatus::Received,
            CommandStatus::Executed,
            CommandStatus::Failed,
            CommandStatus::Rejected,
            CommandStatus::Expired,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            CommandStatus::Executed
                | CommandStatus::Failed
                | CommandStatus::Rejected
                | CommandStatus::Expired
        )
    }

    /// The status an acknowledgement stage leads to.
    pub fn of_ack(stage: AckStage) -> CommandStatus {
        match stage {
            AckStage::Received => CommandStatus::Received,
            AckStage::Executed => CommandStatus::Executed,
            AckStage::Failed => CommandStatus::Failed,
            AckStage::Rejected => CommandStatus::Rejected,
            AckStage::Expired => CommandStatus::Expired,
        }
    }

    /// The statuses from which `self` may be reached. Acks may arrive out of order or twice
    /// (redelivery): a late `received` after `executed` changes nothing, and nothing leaves a
    /// final status. A final ack is accepted from `pending` too: the agent may answer before
    /// this instance recorded `sent`.
    pub fn predecessors(self) -> &'static [CommandStatus] {
        use CommandStatus::*;
        match self {
            Pending => &[],
            Sent => &[Pending],
            Received => &[Pending, Sent],
            Executed | Failed | Rejected => &[Pending, Sent, Received],
            // The timer expires only what the agent does not have yet; the agent's own
            // `expired` ack may come at any open stage.
            Expired => &[Pending, Sent, Received],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CommandStatus::*;
    use super::*;

    const ALL: [CommandStatus; 7] = [Pending, Sent, Received, Executed, Failed, Rejected, Expired];

    #[test]
    fn only_forward_and_finals_are_sticky() {
        let rank = |s: CommandStatus| match s {
            Pending => 0,
            Sent => 1,
            Received => 2,
            _ => 3,
        };
        for to in ALL {
            for from in to.predecessors() {
                assert!(rank(*from) < rank(to), "{from:?} -> {to:?}");
                assert!(!from.is_final());
            }
        }
        for from in ALL.into_iter().filter(|s| s.is_final()) {
            assert!(ALL.iter().all(|to| !to.predecessors().contains(&from)));
        }
    }

    #[test]
    fn names_round_trip_and_acks_map() {
        for s in ALL {
            assert_eq!(CommandStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CommandStatus::parse("done"), None);
        assert_eq!(CommandStatus::of_ack(AckStage::Received), Received);
        assert_eq!(CommandStatus::of_ack(AckStage::Executed), Executed);
        assert!(CommandStatus::of_ack(AckStage::Expired).is_final());
    }
}
