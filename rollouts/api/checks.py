"""Guarded phases in the management API: a rollout's checks (list, add, change, remove),
"test this query now", their results, and an environment's Prometheus (admins).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.models import Environment
from rollouts.api.views import _actor, _paginate
from rollouts.models import CheckResult, PhaseCheck, PrometheusSource, Rollout
from rollouts.services import checks as check_services

TAG_CHECKS = ["guarded phases"]


class CheckOutputSerializer(serializers.ModelSerializer):
    phase_index = serializers.IntegerField(source="phase.order", read_only=True)
    phase = serializers.CharField(source="phase.name", read_only=True)

    class Meta:
        model = PhaseCheck
        fields = (
            "id", "phase_index", "phase", "name", "query", "comparison", "threshold",
            "failures_to_trip", "last_status", "last_value", "last_evaluated_at",
            "consecutive_failures",
        )  # fmt: skip


class CheckInputSerializer(serializers.Serializer):
    # Validated again (with field names) by the service; here only the shapes.
    phase_index = serializers.IntegerField(min_value=0)
    name = serializers.CharField(max_length=100)
    query = serializers.CharField(max_length=check_services.MAX_QUERY)
    comparison = serializers.ChoiceField(choices=PhaseCheck.Comparison.values, default="<")
    threshold = serializers.FloatField()
    failures_to_trip = serializers.IntegerField(min_value=1, max_value=20, default=1)


class CheckUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    query = serializers.CharField(max_length=check_services.MAX_QUERY, required=False)
    comparison = serializers.ChoiceField(choices=PhaseCheck.Comparison.values, required=False)
    threshold = serializers.FloatField(required=False)
    failures_to_trip = serializers.IntegerField(min_value=1, max_value=20, required=False)


class CheckTestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=check_services.MAX_QUERY)
    comparison = serializers.ChoiceField(choices=PhaseCheck.Comparison.values, default="<")
    threshold = serializers.FloatField()
    phase_index = serializers.IntegerField(min_value=0, required=False)


class MeasurementSerializer(serializers.Serializer):
    status = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    query = serializers.CharField()
    detail = serializers.CharField()


class CheckResultSerializer(serializers.ModelSerializer):
    check_id = serializers.IntegerField(source="check_ref_id", read_only=True)
    check = serializers.CharField(source="check_ref.name", read_only=True)

    class Meta:
        model = CheckResult
        fields = (
            "id", "check_id", "check", "phase_index", "at", "status", "value", "comparison",
            "threshold", "query", "detail",
        )  # fmt: skip


class PrometheusSourceSerializer(serializers.Serializer):
    url = serializers.CharField(allow_blank=True, max_length=500)
    bearer_token = serializers.CharField(
        allow_blank=True, max_length=500, required=False, write_only=True
    )


def _checks(rollout: Rollout) -> Any:
    return (
        PhaseCheck.objects.filter(phase__rollout=rollout)
        .select_related("phase")
        .order_by("phase__order", "id")
    )


class RolloutChecksApi(APIView):
    required_permissions: ClassVar = {
        "GET": "rollouts.view_phasecheck",
        "POST": "rollouts.add_phasecheck",
    }

    @extend_schema(tags=TAG_CHECKS, responses=CheckOutputSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        return Response(CheckOutputSerializer(_checks(rollout), many=True).data)

    @extend_schema(
        tags=TAG_CHECKS,
        request=CheckInputSerializer,
        responses={201: CheckOutputSerializer},
        summary="Add a check to a phase (0-based phase_index).",
    )
    def post(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        data = CheckInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        index = values.pop("phase_index")
        phase = rollout.phases.filter(order=index).first()
        if phase is None:
            return Response(
                {"detail": f"The rollout has no phase {index}.", "field": "phase_index"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        check = check_services.check_create(phase=phase, actor=_actor(request), **values)
        return Response(CheckOutputSerializer(check).data, status=status.HTTP_201_CREATED)


class CheckDetailApi(APIView):
    required_permissions: ClassVar = {
        "GET": "rollouts.view_phasecheck",
        "PATCH": "rollouts.change_phasecheck",
        "DELETE": "rollouts.delete_phasecheck",
    }

    def _get(self, key: str, check_id: int) -> PhaseCheck:
        return get_object_or_404(
            PhaseCheck.objects.select_related("phase__rollout"),
            pk=check_id,
            phase__rollout__key=key,
        )

    @extend_schema(tags=TAG_CHECKS, responses=CheckOutputSerializer)
    def get(self, request: Request, key: str, check_id: int) -> Response:
        return Response(CheckOutputSerializer(self._get(key, check_id)).data)

    @extend_schema(tags=TAG_CHECKS, request=CheckUpdateSerializer, responses=CheckOutputSerializer)
    def patch(self, request: Request, key: str, check_id: int) -> Response:
        check = self._get(key, check_id)
        data = CheckUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        check = check_services.check_update(
            check=check, actor=_actor(request), **data.validated_data
        )
        return Response(CheckOutputSerializer(check).data)

    @extend_schema(tags=TAG_CHECKS, responses={204: None})
    def delete(self, request: Request, key: str, check_id: int) -> Response:
        check_services.check_delete(check=self._get(key, check_id), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CheckTestApi(APIView):
    required_permissions: ClassVar = {"POST": "rollouts.add_phasecheck"}

    @extend_schema(
        tags=TAG_CHECKS,
        request=CheckTestSerializer,
        responses=MeasurementSerializer,
        summary="Test this query now: its value from the environment's Prometheus (not stored).",
    )
    def post(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout.objects.select_related("environment", "flag"), key=key)
        data = CheckTestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        index = d.get("phase_index", max(rollout.current_phase_index, 0))
        m = check_services.check_query_test(
            environment=rollout.environment,
            query=d["query"],
            comparison=d["comparison"],
            threshold=d["threshold"],
            flag=rollout.flag.key,
            phase=index + 1,
        )
        return Response(
            {"status": m.status, "value": m.value, "query": m.query, "detail": m.detail}
        )


class CheckResultsApi(APIView):
    required_permissions: ClassVar = {"GET": "rollouts.view_phasecheck"}

    @extend_schema(tags=TAG_CHECKS, responses=CheckResultSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        rollout = get_object_or_404(Rollout, key=key)
        results = (
            CheckResult.objects.filter(rollout=rollout)
            .select_related("check_ref")
            .order_by("at", "id")
        )
        return _paginate(request, self, results, CheckResultSerializer)


class PrometheusSourceApi(APIView):
    required_permissions: ClassVar = {
        "GET": "rollouts.view_prometheussource",
        "PUT": "rollouts.change_prometheussource",
    }

    @extend_schema(tags=TAG_CHECKS, responses=PrometheusSourceSerializer)
    def get(self, request: Request, environment: str) -> Response:
        env = get_object_or_404(Environment, key=environment)
        source = PrometheusSource.objects.filter(environment=env).first()
        return Response({"url": source.url if source else ""})

    @extend_schema(
        tags=TAG_CHECKS,
        request=PrometheusSourceSerializer,
        responses=PrometheusSourceSerializer,
        summary="Set the Prometheus an environment's checks ask (empty url: remove).",
    )
    def put(self, request: Request, environment: str) -> Response:
        env = get_object_or_404(Environment, key=environment)
        data = PrometheusSourceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        source = check_services.prometheus_source_set(
            environment=env,
            actor=_actor(request),
            url=data.validated_data["url"],
            bearer_token=data.validated_data.get("bearer_token"),
        )
        return Response({"url": source.url if source else ""})
