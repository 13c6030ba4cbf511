"""Settings of the decision policy (the High/Low threshold) and the least discriminatory
alternative search."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from credit_risk.config.base import Group, env

POLICIES = ("cost", "recall", "approval_rate", "bad_rate", "expected_loss")


class PolicySettings(Group):
    title: ClassVar[str] = "Decision policy"
    threshold_policy: Literal["cost", "recall", "approval_rate", "bad_rate", "expected_loss"] = (
        Field("cost", alias=env("threshold_policy"),
              description="How the High/Low threshold is chosen on the out-of-fold PDs. cost: "
                          "minimise cost_missed_default x missed defaults + cost_rejected_good "
                          "x rejected good applicants; recall: catch target_recall of the "
                          "defaults; approval_rate: approve target_approval_rate of the "
                          "applicants; bad_rate: approve as many as keep the default rate "
                          "among the approved at most max_bad_rate; expected_loss: minimise "
                          "lgd x exposure of approved defaults + margin x exposure of rejected "
                          "good loans (exposure: the spec's `exposure` field)."))
    cost_missed_default: float = Field(
        20.0, gt=0, alias=env("cost_missed_default"),
        description="Cost of approving a defaulter (cost policy). 20:1 is about LGD 0.45 "
                    "against a 2.25% margin on a good loan; it flags PDs above 1/21 = 4.8%.")
    cost_rejected_good: float = Field(1.0, gt=0, alias=env("cost_rejected_good"),
                                      description="Cost of rejecting a good applicant "
                                                  "(cost policy).")
    target_recall: float = Field(0.8, gt=0, le=1, alias=env("target_recall"),
                                 description="Share of defaults the recall policy catches.")
    target_approval_rate: float = Field(
        0.9, gt=0, lt=1, alias=env("target_approval_rate"),
        description="Share of applicants the approval_rate policy approves.")
    max_bad_rate: float = Field(
        0.02, gt=0, lt=1, alias=env("max_bad_rate"),
        description="Highest default rate among the approved (bad_rate policy).")
    lgd: float = Field(0.45, gt=0, le=1, alias=env("lgd"),
                       description="Loss given default: the share of the exposure lost when a "
                                   "loan defaults (expected_loss policy and the expected loss "
                                   "the model card reports; 0.45, the Basel foundation LGD).")
    margin: float = Field(
        0.0225, gt=0, le=1, alias=env("margin"),
        description="What a good loan earns over its life as a share of its exposure "
                    "(expected_loss policy).")
    lda_search: Literal["on_failure", "always", "off"] = Field(
        "on_failure", alias=env("lda_search"),
        description="Search for a less discriminatory alternative when the selected "
                    "candidate fails the fairness gate (on_failure), in every run (always; "
                    "the gate still judges the selected candidate when it passes), or never.")
    lda_max_auc_loss: float = Field(
        0.005, ge=0, le=0.1, alias=env("lda_max_auc_loss"),
        description="An alternative's cross-validated ROC-AUC may be at most this much below "
                    "the selected candidate's.")
    lda_drivers: int = Field(
        2, ge=0, le=10, alias=env("lda_drivers"),
        description="The features that drive the disparity most are each removed from every "
                    "candidate in turn (refitted with its chosen parameters): this many.")
