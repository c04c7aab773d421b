"""Management API of flags: one view per resource operation, calling `flags.services`.

Only session and API-token users reach it (SDK keys evaluate flags, they never manage them).
Changes name the `version` they read: a stale one answers 409 Conflict with a message.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import BoundedLimitOffsetPagination
from flags import services, ui_selectors
from flags.api import serializers as s
from flags.models import Environment, Flag, FlagState, SdkKey, Segment

FLAGS = ["flags"]
SEGMENTS = ["segments"]
ENVIRONMENTS = ["environments"]
SDK_KEYS = ["SDK keys"]
CONFLICT = OpenApiResponse(description="The version is stale: reload and try again.")


def _flags_queryset() -> QuerySet[Flag]:
    return Flag.objects.select_related("owner").prefetch_related(
        Prefetch("states", queryset=FlagState.objects.select_related("environment"))
    )


def _get(queryset: Any, what: str, **lookup: Any) -> Any:
    """The object, or a 404 in the API's error shape that says what was not found."""
    found = queryset.filter(**lookup).first()
    if found is None:
        raise NotFound(f"There is no {what}.")
    return found


def _flag(key: str) -> Flag:
    return _get(_flags_queryset(), f"flag with the key {key!r}", key=key)


def _environment(key: str) -> Environment:
    return _get(Environment.objects.all(), f"environment {key!r}", key=key)


def _state(flag_key: str, env_key: str) -> FlagState:
    _flag(flag_key)
    return _get(
        FlagState.objects.select_related("flag", "environment"),
        f"environment {env_key!r} for the flag {flag_key!r}",
        flag__key=flag_key,
        environment__key=env_key,
    )


def _segment(pk: int) -> Segment:
    return _get(Segment.objects.all(), f"segment {pk}", pk=pk)


# --------------------------------------------------------------------------------------------
# Flags


class FlagListCreateApi(APIView):
    required_permissions = {"GET": "flags.view_flag", "POST": "flags.add_flag"}
    InputSerializer = s.FlagCreateInputSerializer
    OutputSerializer = s.FlagOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_list",
        summary="List flags",
        parameters=[
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="Search in key, name, description."
            ),
            OpenApiParameter("tag", OpenApiTypes.STR),
            OpenApiParameter(
                "lifecycle",
                OpenApiTypes.STR,
                description="active, permanent, stale, archived or all (default: not archived).",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
        ],
        responses={200: s.FlagPageSerializer},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        lifecycle = params.get("lifecycle", "")
        if lifecycle and lifecycle != "all" and lifecycle not in Flag.Lifecycle.values:
            allowed = ", ".join([*Flag.Lifecycle.values, "all"])
            raise ValidationError({"lifecycle": [f"Use one of {allowed}."]})
        flags = ui_selectors.flag_list(
            q=params.get("q", ""), tag=params.get("tag", ""), lifecycle=lifecycle
        ).select_related("owner")
        flags = flags.prefetch_related(None).prefetch_related(
            Prefetch("states", queryset=FlagState.objects.select_related("environment"))
        )
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(flags, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_create",
        summary="Create a flag (off in every environment)",
        request=s.FlagCreateInputSerializer,
        responses={201: s.FlagOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flag = services.flag_create(
            key=data["key"],
            name=data.get("name", ""),
            description=data["description"],
            type=data["type"],
            variants=data.get("variants"),
            tags=data.get("tags"),
            lifecycle=data["lifecycle"],
            actor=request.user,
        )
        return Response(self.OutputSerializer(_flag(flag.key)).data, status=status.HTTP_201_CREATED)


class FlagDetailApi(APIView):
    required_permissions = {
        "GET": "flags.view_flag",
        "PUT": "flags.change_flag",
        "PATCH": "flags.change_flag",
    }
    InputSerializer = s.FlagUpdateInputSerializer
    OutputSerializer = s.FlagOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_retrieve",
        summary="A flag with its state in every environment",
        responses={200: s.FlagOutputSerializer},
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(self.OutputSerializer(_flag(key)).data)

    def _update(self, request: Request, key: str, *, partial: bool) -> Response:
        flag = _get(Flag.objects.all(), f"flag with the key {key!r}", key=key)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "version" not in data:
            raise ValidationError({"version": ["Send the version you read."]})
        services.flag_update(
            flag=flag,
            actor=request.user,
            expected_version=data["version"],
            name=data.get("name"),
            description=data.get("description"),
            type=data.get("type"),
            variants=data.get("variants"),
            tags=data.get("tags"),
            lifecycle=data.get("lifecycle"),
        )
        return Response(self.OutputSerializer(_flag(key)).data)

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_update",
        summary="Replace a flag's details and variants (the key never changes)",
        request=s.FlagUpdateInputSerializer,
        responses={200: s.FlagOutputSerializer, 409: CONFLICT},
    )
    def put(self, request: Request, key: str) -> Response:
        return self._update(request, key, partial=False)

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_partial_update",
        summary="Change some of a flag's details or its variants",
        request=s.FlagUpdateInputSerializer(partial=True),
        responses={200: s.FlagOutputSerializer, 409: CONFLICT},
    )
    def patch(self, request: Request, key: str) -> Response:
        return self._update(request, key, partial=True)


class FlagArchiveApi(APIView):
    required_permissions = {"POST": "flags.change_flag"}
    InputSerializer = s.FlagArchiveInputSerializer
    OutputSerializer = s.FlagOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flags_archive",
        summary="Archive a flag: off in every environment, no longer served to SDKs",
        request=s.FlagArchiveInputSerializer,
        responses={200: s.FlagOutputSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, key: str) -> Response:
        flag = _get(Flag.objects.all(), f"flag with the key {key!r}", key=key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.flag_archive(
            flag=flag, actor=request.user, expected_version=serializer.validated_data.get("version")
        )
        return Response(self.OutputSerializer(_flag(key)).data)


class FlagStateListApi(APIView):
    required_permissions = {"GET": "flags.view_flagstate"}
    OutputSerializer = s.FlagStateOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flag_states_list",
        summary="A flag's state (enabled, rules) in every environment",
        responses={200: s.FlagStateOutputSerializer(many=True)},
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(self.OutputSerializer(_flag(key).states.all(), many=True).data)


class FlagStateApi(APIView):
    required_permissions = {"GET": "flags.view_flagstate", "PUT": "flags.change_flagstate"}
    InputSerializer = s.FlagStateInputSerializer
    OutputSerializer = s.FlagStateOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flag_state_retrieve",
        summary="A flag's state in one environment",
        responses={200: s.FlagStateOutputSerializer},
    )
    def get(self, request: Request, key: str, env: str) -> Response:
        return Response(self.OutputSerializer(_state(key, env)).data)

    @extend_schema(
        tags=FLAGS,
        operation_id="flag_state_update",
        summary="Set a flag's kill switch and/or rules in one environment",
        description=(
            "`rules` replaces the whole ordered list (a flag is on when any rule matches). "
            "Send the `version` you read: a stale one answers 409 Conflict."
        ),
        request=s.FlagStateInputSerializer,
        responses={200: s.FlagStateOutputSerializer, 409: CONFLICT},
    )
    def put(self, request: Request, key: str, env: str) -> Response:
        state = _state(key, env)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.flag_state_update(
            flag=state.flag,
            environment=state.environment,
            enabled=data.get("enabled"),
            rules=data.get("rules"),
            expected_version=data["version"],
            actor=request.user,
        )
        return Response(self.OutputSerializer(_state(key, env)).data)


class FlagToggleApi(APIView):
    required_permissions = {"POST": "flags.change_flagstate"}
    InputSerializer = s.FlagToggleInputSerializer
    OutputSerializer = s.FlagStateOutputSerializer

    @extend_schema(
        tags=FLAGS,
        operation_id="flag_toggle",
        summary="Turn a flag on or off in one environment (the kill switch)",
        request=s.FlagToggleInputSerializer,
        responses={200: s.FlagStateOutputSerializer},
    )
    def post(self, request: Request, key: str, env: str) -> Response:
        flag = _get(Flag.objects.all(), f"flag with the key {key!r}", key=key)
        environment = _environment(env)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.flag_toggle(
            flag=flag,
            environment=environment,
            enabled=serializer.validated_data["enabled"],
            actor=request.user,
        )
        return Response(self.OutputSerializer(_state(key, env)).data)


# --------------------------------------------------------------------------------------------
# Segments


class SegmentListCreateApi(APIView):
    required_permissions = {"GET": "flags.view_segment", "POST": "flags.add_segment"}
    InputSerializer = s.SegmentInputSerializer
    OutputSerializer = s.SegmentOutputSerializer

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_list",
        summary="List segments",
        responses={200: s.SegmentOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(ui_selectors.segments(), many=True).data)

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_create",
        summary="Create a segment",
        request=s.SegmentInputSerializer,
        responses={201: s.SegmentOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = services.segment_create(
            name=data["name"],
            description=data["description"],
            constraints=data["constraints"],
            actor=request.user,
        )
        return Response(self.OutputSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailApi(APIView):
    required_permissions = {
        "GET": "flags.view_segment",
        "PUT": "flags.change_segment",
        "PATCH": "flags.change_segment",
        "DELETE": "flags.delete_segment",
    }
    InputSerializer = s.SegmentInputSerializer
    OutputSerializer = s.SegmentOutputSerializer

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_retrieve",
        summary="A segment",
        responses={200: s.SegmentOutputSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.OutputSerializer(_segment(pk)).data)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        segment = _segment(pk)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        segment = services.segment_update(
            segment=segment,
            actor=request.user,
            expected_version=data.get("version"),
            name=data.get("name"),
            description=data.get("description"),
            constraints=data.get("constraints"),
        )
        return Response(self.OutputSerializer(segment).data)

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_update",
        summary="Replace a segment (every environment's evaluation follows)",
        request=s.SegmentInputSerializer,
        responses={200: s.SegmentOutputSerializer, 409: CONFLICT},
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_partial_update",
        summary="Change some fields of a segment",
        request=s.SegmentInputSerializer(partial=True),
        responses={200: s.SegmentOutputSerializer, 409: CONFLICT},
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        tags=SEGMENTS,
        operation_id="segments_destroy",
        summary="Delete a segment that no rule uses (400 names the rules that do)",
        responses={204: None},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.segment_delete(segment=_segment(pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------
# Environments (read for everyone with access; write for admins)


class EnvironmentListCreateApi(APIView):
    required_permissions = {"GET": "flags.view_environment", "POST": "flags.add_environment"}
    InputSerializer = s.EnvironmentCreateInputSerializer
    OutputSerializer = s.EnvironmentOutputSerializer

    @extend_schema(
        tags=ENVIRONMENTS,
        operation_id="environments_list",
        summary="List environments in their order",
        responses={200: s.EnvironmentOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(ui_selectors.environments(), many=True).data)

    @extend_schema(
        tags=ENVIRONMENTS,
        operation_id="environments_create",
        summary="Add an environment (admins); every flag gets an off state in it",
        request=s.EnvironmentCreateInputSerializer,
        responses={201: s.EnvironmentOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        environment = services.environment_create(
            key=data["key"],
            name=data["name"],
            is_production=data["is_production"],
            order=data.get("order"),
            actor=request.user,
        )
        return Response(self.OutputSerializer(environment).data, status=status.HTTP_201_CREATED)


class EnvironmentDetailApi(APIView):
    required_permissions = {"GET": "flags.view_environment", "PATCH": "flags.change_environment"}
    InputSerializer = s.EnvironmentUpdateInputSerializer
    OutputSerializer = s.EnvironmentOutputSerializer

    @extend_schema(
        tags=ENVIRONMENTS,
        operation_id="environments_retrieve",
        summary="An environment",
        responses={200: s.EnvironmentOutputSerializer},
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(self.OutputSerializer(_environment(key)).data)

    @extend_schema(
        tags=ENVIRONMENTS,
        operation_id="environments_partial_update",
        summary="Rename, reorder or mark an environment as production (admins)",
        request=s.EnvironmentUpdateInputSerializer,
        responses={200: s.EnvironmentOutputSerializer},
    )
    def patch(self, request: Request, key: str) -> Response:
        environment = _environment(key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        environment = services.environment_update(
            environment=environment,
            name=data.get("name"),
            is_production=data.get("is_production"),
            order=data.get("order"),
            actor=request.user,
        )
        return Response(self.OutputSerializer(environment).data)


# --------------------------------------------------------------------------------------------
# SDK keys (admins only; Support never sees them)


class SdkKeyListCreateApi(APIView):
    required_permissions = {"GET": "flags.view_sdkkey", "POST": "flags.add_sdkkey"}
    InputSerializer = s.SdkKeyCreateInputSerializer
    OutputSerializer = s.SdkKeyOutputSerializer

    @extend_schema(
        tags=SDK_KEYS,
        operation_id="sdk_keys_list",
        summary="An environment's SDK keys, masked",
        responses={200: s.SdkKeyOutputSerializer(many=True)},
    )
    def get(self, request: Request, key: str) -> Response:
        environment = _environment(key)
        keys = (
            SdkKey.objects.filter(environment=environment)
            .select_related("environment", "created_by")
            .order_by("-created_at")
        )
        return Response(self.OutputSerializer(keys, many=True).data)

    @extend_schema(
        tags=SDK_KEYS,
        operation_id="sdk_keys_create",
        summary="Create an SDK key: the raw key is in this answer only",
        request=s.SdkKeyCreateInputSerializer,
        responses={201: s.SdkKeyCreatedOutputSerializer},
    )
    def post(self, request: Request, key: str) -> Response:
        environment = _environment(key)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sdk_key, raw = services.sdk_key_create(
            environment=environment,
            name=serializer.validated_data["name"],
            actor=request.user,
            kind=serializer.validated_data["kind"],
        )
        sdk_key.key = raw  # type: ignore[attr-defined]
        response = Response(
            s.SdkKeyCreatedOutputSerializer(sdk_key).data, status=status.HTTP_201_CREATED
        )
        response["Cache-Control"] = "no-store"
        return response


class SdkKeyRevokeApi(APIView):
    required_permissions = {"POST": "flags.change_sdkkey"}
    OutputSerializer = s.SdkKeyOutputSerializer

    @extend_schema(
        tags=SDK_KEYS,
        operation_id="sdk_keys_revoke",
        summary="Revoke an SDK key (services using it stop getting flags)",
        request=None,
        responses={200: s.SdkKeyOutputSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        sdk_key = _get(SdkKey.objects.select_related("environment"), f"SDK key {pk}", pk=pk)
        sdk_key = services.sdk_key_revoke(sdk_key=sdk_key, actor=request.user)
        sdk_key = SdkKey.objects.select_related("environment", "created_by").get(pk=sdk_key.pk)
        return Response(self.OutputSerializer(sdk_key).data)
