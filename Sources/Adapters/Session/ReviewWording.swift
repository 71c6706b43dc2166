/// How a review's outcome is told to users, in every protocol.
package enum ReviewWording {
    /// `held for review r-1; waiting for an approver (sluice reviews approve r-1)`
    package static func held(_ ticket: ReviewTicket) -> String {
        "held for review \(ticket.id); waiting for an approver (\(ticket.approveHint))"
    }

    /// The refusal for a denied or timed-out review; nil when approved.
    package static func refusal(_ outcome: ReviewOutcome) -> String? {
        switch outcome {
        case .approved: nil
        case .denied(let by, let reason): "denied by \(by)" + (reason.isEmpty ? "" : ": \(reason)")
        case .timedOut: "the review timed out"
        }
    }

    /// `approved by bob, carol`, or the refusal: the decision as told to the user.
    package static func decided(_ outcome: ReviewOutcome) -> String {
        if case .approved(let by) = outcome { return "approved by \(by.joined(separator: ", "))" }
        return refusal(outcome) ?? ""
    }
}
