"""Rollouts management API: one view per operation, each calling one service.

Reads need `view_*`, creates `add_*`, every rollout action `rollouts.change_rollout`; Support
(read only) gets a JSON 403 on writes. Domain errors become JSON 400 (`core.http`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import BoundedLimitOffsetPagination
from flags.models import Environment
from rollouts import services, strategies
from rollouts.api.serializers import (
    ActionInputSerializer,
    AdvanceOverrideInputSerializer,
    AlertSettingsInputSerializer,
    ApprovalOutputSerializer,
    ChecklistItemOutputSerializer,
    DecisionInputSerializer,
    EventOutputSerializer,
    HoldInputSerializer,
    HoldOutputSerializer,
    OverrideInputSerializer,
    PlanInputSerializer,
    PolicySerializer,
    ReleaseInputSerializer,
    ReleaseOutputSerializer,
    RollbackInputSerializer,
    RolloutCreateInputSerializer,
    RolloutOutputSerializer,
    TickInputSerializer,
    WindowSerializer,
    phases_payload,
)
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)

API = RolloutEvent.Source.API
TAG_RELEASES = ["releases"]
TAG_ROLLOUTS = ["rollouts"]


def _releases() -> QuerySet[Release]:
    return (
        Release.objects.select_related("owner")
        .prefetch_related("flags")
        .order_by("-created_at", "-id")
    )


def _rollouts() -> QuerySet[Rollout]:
    return (
        Rollout.objects.select_related("environment", "flag", "owner", "release")
        .prefetch_related(
            Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order")),
            Prefetch("phases__checklist", queryset=ChecklistItem.objects.order_by("position")),
            Prefetch(
                "holds",
                queryset=Hold.objects.filter(cleared_at__isnull=True).order_by("held_at", "id"),
                to_attr="active_holds_list",
            ),
        )
        .order_by("-created_at", "-id")
    )


def _actor(request: Request) -> User | None:
    """The person calling (ModelPermissions let only signed-in users through), as services
    take it; an anonymous user would be nobody to them either way."""
    user = request.user
    return user if isinstance(user, User) else None


def _rollout(key: str) -> Rollout:
    return get_object_or_404(_rollouts(), key=key)


def _paginate(request: Request, view: APIView, queryset: QuerySet, serializer: Any) -> Response:
    paginator = BoundedLimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


# --------------------------------------------------------------------------------------------
# Releases


class ReleaseListCreateApi(APIView):
    queryset = Release.objects.all()

    @extend_schema(tags=TAG_RELEASES, responses=ReleaseOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return _paginate(request, self, _releases(), ReleaseOutputSerializer)

    @extend_schema(
        tags=TAG_RELEASES, request=ReleaseInputSerializer, responses={201: ReleaseOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = ReleaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = services.release_create(actor=_actor(request), **data.validated_data)
        release = _releases().get(pk=release.pk)
        return Response(ReleaseOutputSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseDetailApi(APIView):
    queryset = Release.objects.all()

    @extend_schema(tags=TAG_RELEASES, responses=ReleaseOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReleaseOutputSerializer(get_object_or_404(_releases(), pk=pk)).data)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        release = get_object_or_404(Release, pk=pk)
        data = ReleaseInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        services.release_update(release=release, actor=_actor(request), **data.validated_data)
        return Response(ReleaseOutputSerializer(_releases().get(pk=pk)).data)

    @extend_schema(
        tags=TAG_RELEASES, request=ReleaseInputSerializer, responses=ReleaseOutputSerializer
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=TAG_RELEASES, request=ReleaseInputSerializer, responses=ReleaseOutputSerializer
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)


# --------------------------------------------------------------------------------------------
# Rollouts


class RolloutListCreateApi(APIView):
    queryset = Rollout.objects.all()

    @extend_schema(
        tags=TAG_ROLLOUTS,
        parameters=[
            OpenApiParameter("state", str, enum=Rollout.State.values),
            OpenApiParameter("strategy", str, enum=Rollout.Strategy.values),
            OpenApiParameter("environment", str, description="Environment key."),
            OpenApiParameter("release", int, description="Release id."),
        ],
        responses=RolloutOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = _rollouts()
        params = request.query_params
        if params.get("state"):
            qs = qs.filter(state=params["state"])
        if params.get("strategy"):
            qs = qs.filter(strategy=params["strategy"])
        if params.get("environment"):
            qs = qs.filter(environment__key=params["environment"])
        if params.get("release", "").isdigit():
            qs = qs.filter(release_id=int(params["release"]))
        return _paginate(request, self, qs, RolloutOutputSerializer)

    @extend_schema(
        tags=TAG_ROLLOUTS,
        request=RolloutCreateInputSerializer,
        responses={201: RolloutOutputSerializer},
        description=(
            "Create a draft rollout. Give `phases`, or a `template` (see GET "
            "/api/v1/rollouts/templates); without either the strategy's first template is used."
        ),
    )
    def post(self, request: Request) -> Response:
        data = RolloutCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rollout = services.rollout_create(
            release=v["release"],
            environment=v["environment"],
            strategy=v["strategy"],
            actor=_actor(request),
            source=API,
            flag=v.get("flag"),
            flag_key=v.get("flag_key") or None,
            key=v.get("key") or None,
            timezone=v.get("timezone") or "UTC",
            template=v.get("template"),
            phases=phases_payload(v["phases"]) if "phases" in v else None,
            allow_decreasing=v.get("allow_decreasing", False),
            alert_policy=v["alert_policy"],
        )
        return Response(
            RolloutOutputSerializer(_rollout(rollout.key)).data, status=status.HTTP_201_CREATED
        )


class RolloutDetailApi(APIView):
    queryset = Rollout.objects.all()

    @extend_schema(tags=TAG_ROLLOUTS, responses=RolloutOutputSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(RolloutOutputSerializer(_rollout(key)).data)


class RolloutPlanApi(APIView):
    required_permissions: ClassVar = {"PUT": "rollouts.change_rollout"}

    @extend_schema(
        tags=TAG_ROLLOUTS,
        request=PlanInputSerializer,
        responses=RolloutOutputSerializer,
        description=(
            "Replace the plan's phases. Phases already applied cannot change their exposure or "
            "timing; errors name the field as `phases.<index>.<field>`."
        ),
    )
    def put(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        data = PlanInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.rollout_plan_update(
            rollout=rollout,
            phases=phases_payload(data.validated_data["phases"]),
            actor=_actor(request),
            source=API,
            expected_version=data.validated_data.get("expected_version"),
            allow_decreasing=data.validated_data.get("allow_decreasing"),
        )
        return Response(RolloutOutputSerializer(_rollout(key)).data)


class RolloutEventsApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_rolloutevent"}

    @extend_schema(tags=TAG_ROLLOUTS, responses=EventOutputSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        events = RolloutEvent.objects.filter(rollout=rollout).select_related("actor")
        return _paginate(request, self, events.order_by("at", "id"), EventOutputSerializer)


class TemplatesApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_rollout"}

    @extend_schema(tags=TAG_ROLLOUTS, responses={200: dict})
    def get(self, request: Request) -> Response:
        """The strategies, the flag each drives, and their plan templates."""
        body = [
            {
                "strategy": spec.key,
                "label": spec.label,
                "flag_type": spec.flag_type,
                "stickiness": spec.stickiness,
                "description": spec.description,
                "templates": [
                    {
                        "key": t.key,
                        "name": t.name,
                        "description": t.description,
                        "phases": [
                            {
                                **{k: v for k, v in p.items() if k != "soak"},
                                "soak_seconds": p["soak"].total_seconds() if p["soak"] else None,
                            }
                            for p in t.phases
                        ],
                    }
                    for t in spec.templates
                ],
            }
            for spec in strategies.STRATEGIES.values()
        ]
        return Response(body)


# --------------------------------------------------------------------------------------------
# Actions: POST /api/v1/rollouts/{key}/<action>


class _RolloutActionApi(APIView):
    required_permissions: ClassVar = {"POST": "rollouts.change_rollout"}
    input_serializer: ClassVar[type] = ActionInputSerializer

    def act(self, rollout: Rollout, request: Request, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def post(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.act(rollout, request, data.validated_data)
        return Response(RolloutOutputSerializer(_rollout(key)).data)


def _action(
    name: str, doc: str, call: Callable[[Rollout, Request, dict[str, Any]], object], **kw: Any
) -> type[_RolloutActionApi]:
    serializer = kw.get("input_serializer", ActionInputSerializer)

    def act(self: _RolloutActionApi, rollout: Rollout, request: Request, data: dict) -> None:
        call(rollout, request, data)

    def post(self: _RolloutActionApi, request: Request, key: str) -> Response:
        return _RolloutActionApi.post(self, request, key)

    post = extend_schema(
        tags=TAG_ROLLOUTS,
        request=serializer,
        responses=RolloutOutputSerializer,
        summary=doc,
        operation_id=f"rollouts_{name}",
    )(post)
    return type(
        f"Rollout{name.title()}Api",
        (_RolloutActionApi,),
        {"act": act, "post": post, "input_serializer": serializer, "__doc__": doc},
    )


RolloutScheduleApi = _action(
    "schedule",
    "Schedule a draft: it starts at phase 1's date-time.",
    lambda r, q, d: services.rollout_schedule(rollout=r, actor=_actor(q), source=API),
)
RolloutStartApi = _action(
    "start",
    "Start now: capture the flag's state and apply phase 1 (its gates must be satisfied).",
    lambda r, q, d: services.rollout_start(
        rollout=r,
        actor=_actor(q),
        source=API,
        override_window=d["override_window"],
        reason=d["reason"],
    ),
    input_serializer=OverrideInputSerializer,
)
RolloutPauseApi = _action(
    "pause",
    "Pause: exposure stays, the soak clock stops.",
    lambda r, q, d: services.rollout_pause(
        rollout=r, actor=_actor(q), source=API, reason=d["reason"]
    ),
)
RolloutResumeApi = _action(
    "resume",
    "Resume a paused or held rollout; the soak continues where it stopped.",
    lambda r, q, d: services.rollout_resume(rollout=r, actor=_actor(q), source=API),
)
RolloutAdvanceApi = _action(
    "advance",
    "Start the next phase now (skips the remaining soak: reason required) or pass a manual gate.",
    lambda r, q, d: services.rollout_advance_now(
        rollout=r,
        actor=_actor(q),
        source=API,
        reason=d["reason"],
        expected_phase_index=d.get("expected_phase_index"),
        override_window=d["override_window"],
    ),
    input_serializer=AdvanceOverrideInputSerializer,
)
RolloutCompleteApi = _action(
    "complete",
    "Complete: apply the last phase's exposure now.",
    lambda r, q, d: services.rollout_complete(
        rollout=r,
        actor=_actor(q),
        source=API,
        override_window=d["override_window"],
        reason=d["reason"],
    ),
    input_serializer=OverrideInputSerializer,
)
RolloutCancelApi = _action(
    "cancel",
    "Cancel the plan; the flag keeps its current exposure.",
    lambda r, q, d: services.rollout_cancel(
        rollout=r, actor=_actor(q), source=API, reason=d["reason"]
    ),
)
RolloutRollbackApi = _action(
    "rollback",
    "Roll back: restore the flag's state from before the rollout at once (mode restore), or "
    "stop where it is (mode freeze).",
    lambda r, q, d: services.rollout_rollback(
        rollout=r, actor=_actor(q), source=API, reason=d["reason"], mode=d["mode"]
    ),
    input_serializer=RollbackInputSerializer,
)
RolloutHoldApi = _action(
    "hold",
    "Hold: the clock stops and exposure stays until the hold is cleared or it is resumed.",
    lambda r, q, d: services.rollout_hold(
        rollout=r, actor=_actor(q), source=API, reason=d["reason"]
    ),
    input_serializer=HoldInputSerializer,
)
RolloutRequestApprovalApi = _action(
    "request_approval",
    "Ask for the approval the next phase needs (drafts, or after a decline).",
    lambda r, q, d: services.approval_request(rollout=r, actor=_actor(q), source=API),
)

ACTION_VIEWS: dict[str, type[_RolloutActionApi]] = {
    "schedule": RolloutScheduleApi,
    "start": RolloutStartApi,
    "pause": RolloutPauseApi,
    "resume": RolloutResumeApi,
    "advance": RolloutAdvanceApi,
    "complete": RolloutCompleteApi,
    "cancel": RolloutCancelApi,
    "rollback": RolloutRollbackApi,
    "hold": RolloutHoldApi,
    "request-approval": RolloutRequestApprovalApi,
}


# --------------------------------------------------------------------------------------------
# Rollout safety: holds, approvals, checklists, alert settings, windows, policies

TAG_SAFETY = ["rollout safety"]


class RolloutHoldsApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_hold"}

    @extend_schema(
        tags=TAG_SAFETY,
        parameters=[OpenApiParameter("active", bool, description="Only active holds.")],
        responses=HoldOutputSerializer(many=True),
    )
    def get(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        holds = Hold.objects.filter(rollout=rollout).select_related("created_by", "cleared_by")
        if request.query_params.get("active") in ("1", "true"):
            holds = holds.filter(cleared_at__isnull=True)
        return _paginate(request, self, holds.order_by("held_at", "id"), HoldOutputSerializer)


class HoldClearApi(APIView):
    required_permissions: ClassVar = {"POST": "rollouts.change_rollout"}

    @extend_schema(
        tags=TAG_SAFETY,
        request=ActionInputSerializer,
        responses=RolloutOutputSerializer,
        summary="Clear a hold; the last one leaves the rollout paused for a person to resume.",
    )
    def post(self, request: Request, key: str, hold_id: int) -> Response:
        hold = get_object_or_404(Hold, pk=hold_id, rollout__key=key)
        data = ActionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.rollout_hold_clear(
            hold=hold, actor=_actor(request), source=API, reason=data.validated_data["reason"]
        )
        return Response(RolloutOutputSerializer(_rollout(key)).data)


def _approvals() -> QuerySet[Approval]:
    return Approval.objects.select_related("rollout", "phase", "requested_by").prefetch_related(
        Prefetch("decisions", queryset=ApprovalDecision.objects.select_related("user"))
    )


class ApprovalListApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_approval"}

    @extend_schema(
        tags=TAG_SAFETY,
        parameters=[
            OpenApiParameter(
                "state", str, enum=Approval.State.values, description="Default pending."
            ),
            OpenApiParameter("rollout", str, description="Rollout key."),
            OpenApiParameter("mine", bool, description="Only those I may decide."),
        ],
        responses=ApprovalOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        state = params.get("state") or Approval.State.PENDING
        qs = _approvals().filter(state=state)
        if params.get("rollout"):
            qs = qs.filter(rollout__key=params["rollout"])
        if params.get("mine") in ("1", "true"):
            user = _actor(request)
            qs = qs.exclude(decisions__user=user).exclude(
                requested_by=user, allow_self_approval=False
            )
        return _paginate(request, self, qs.order_by("requested_at", "id"), ApprovalOutputSerializer)


class _ApprovalDecideApi(APIView):
    required_permissions: ClassVar = {"POST": "rollouts.approve_rollout"}
    decision: ClassVar[str] = "approve"

    def post(self, request: Request, approval_id: int) -> Response:
        approval = get_object_or_404(Approval, pk=approval_id)
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.approval_decide(
            approval=approval,
            actor=_actor(request),
            decision=self.decision,
            comment=data.validated_data["comment"],
            source=API,
        )
        return Response(ApprovalOutputSerializer(_approvals().get(pk=approval_id)).data)


class ApprovalApproveApi(_ApprovalDecideApi):
    decision = "approve"

    @extend_schema(
        tags=TAG_SAFETY,
        request=DecisionInputSerializer,
        responses=ApprovalOutputSerializer,
        summary="Approve (not your own request unless the policy allows it).",
    )
    def post(self, request: Request, approval_id: int) -> Response:
        return super().post(request, approval_id)


class ApprovalDeclineApi(_ApprovalDecideApi):
    decision = "decline"

    @extend_schema(
        tags=TAG_SAFETY,
        request=DecisionInputSerializer,
        responses=ApprovalOutputSerializer,
        summary="Decline with a comment: the rollout is held with it.",
    )
    def post(self, request: Request, approval_id: int) -> Response:
        return super().post(request, approval_id)


class RolloutChecklistApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_checklistitem"}

    @extend_schema(tags=TAG_SAFETY, responses=ChecklistItemOutputSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        items = (
            ChecklistItem.objects.filter(phase__rollout=rollout)
            .select_related("phase", "ticked_by")
            .order_by("phase__order", "position", "id")
        )
        return Response(ChecklistItemOutputSerializer(items, many=True).data)


class ChecklistTickApi(APIView):
    required_permissions: ClassVar = {"POST": "rollouts.change_rollout"}

    @extend_schema(
        tags=TAG_SAFETY,
        request=TickInputSerializer,
        responses=ChecklistItemOutputSerializer,
        summary="Tick (or untick) a step of a phase's checklist; who and when are recorded.",
    )
    def post(self, request: Request, key: str, item_id: int) -> Response:
        item = get_object_or_404(
            ChecklistItem.objects.select_related("phase__rollout"),
            pk=item_id,
            phase__rollout__key=key,
        )
        data = TickInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.checklist_tick(
            item=item,
            actor=_actor(request),
            source=API,
            ticked=data.validated_data["ticked"],
            note=data.validated_data["note"],
        )
        return Response(ChecklistItemOutputSerializer(item).data)


class RolloutAlertSettingsApi(APIView):
    required_permissions: ClassVar = {"PATCH": "rollouts.change_rollout"}

    @extend_schema(
        tags=TAG_SAFETY,
        request=AlertSettingsInputSerializer,
        responses=RolloutOutputSerializer,
        summary="What an Alertmanager alert does to the rollout, and which alerts count.",
    )
    def patch(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        data = AlertSettingsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.rollout_alert_settings_update(
            rollout=rollout, actor=_actor(request), **data.validated_data
        )
        return Response(RolloutOutputSerializer(_rollout(key)).data)


def _windows() -> QuerySet[FreezeWindow]:
    return FreezeWindow.objects.select_related("environment", "created_by").order_by(
        "kind", "name", "id"
    )


class WindowListCreateApi(APIView):
    queryset = FreezeWindow.objects.all()

    @extend_schema(tags=TAG_SAFETY, responses=WindowSerializer(many=True))
    def get(self, request: Request) -> Response:
        return _paginate(request, self, _windows(), WindowSerializer)

    @extend_schema(
        tags=TAG_SAFETY,
        request=WindowSerializer,
        responses={201: WindowSerializer},
        summary="A freeze (deny) or allowed-hours window: one-off or cron + duration.",
    )
    def post(self, request: Request) -> Response:
        data = WindowSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        window = services.window_create(actor=_actor(request), **data.service_kwargs())
        return Response(
            WindowSerializer(_windows().get(pk=window.pk)).data, status=status.HTTP_201_CREATED
        )


class WindowDetailApi(APIView):
    queryset = FreezeWindow.objects.all()

    @extend_schema(tags=TAG_SAFETY, responses=WindowSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WindowSerializer(get_object_or_404(_windows(), pk=pk)).data)

    @extend_schema(tags=TAG_SAFETY, request=WindowSerializer, responses=WindowSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        window = get_object_or_404(FreezeWindow, pk=pk)
        data = WindowSerializer(window, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.window_update(window=window, actor=_actor(request), **data.service_kwargs())
        return Response(WindowSerializer(_windows().get(pk=pk)).data)

    @extend_schema(tags=TAG_SAFETY, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.window_delete(window=get_object_or_404(FreezeWindow, pk=pk), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyListApi(APIView):
    queryset = ApprovalPolicy.objects.all()

    @extend_schema(tags=TAG_SAFETY, responses=PolicySerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = ApprovalPolicy.objects.select_related("environment", "requires_completed_in")
        return Response(PolicySerializer(qs.order_by("environment__order"), many=True).data)


class PolicyDetailApi(APIView):
    queryset = ApprovalPolicy.objects.all()

    @extend_schema(
        tags=TAG_SAFETY,
        request=PolicySerializer,
        responses=PolicySerializer,
        summary="Create or replace an environment's gates (live rollouts follow at once).",
    )
    def put(self, request: Request, environment: str) -> Response:
        env = get_object_or_404(Environment, key=environment)
        data = PolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.approval_policy_set(
            environment=env, actor=_actor(request), **data.validated_data
        )
        return Response(PolicySerializer(policy).data)

    @extend_schema(tags=TAG_SAFETY, responses={204: None})
    def delete(self, request: Request, environment: str) -> Response:
        env = get_object_or_404(Environment, key=environment)
        services.approval_policy_delete(environment=env, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
