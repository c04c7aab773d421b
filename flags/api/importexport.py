"""Management API: import and export an environment's flags (Unleash client-API JSON).

    POST /api/v1/environments/{key}/import[?create=true]   needs flags.change_flag
                                                           (+ flags.add_environment to create)
    GET  /api/v1/environments/{key}/export                 needs flags.view_flag

SDK keys are never accepted here: only session and API-token users with those permissions.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import permission_denied_message
from flags.importexport import flags_export, flags_import
from flags.models import Environment

TAGS = ["flags import/export"]


class DocumentSerializer(serializers.Serializer):
    """Unleash's client-API document (`GET /api/client/features`), as exported by Rollcall."""

    version = serializers.IntegerField(required=False, default=2)
    features = serializers.ListField(
        child=serializers.DictField(),
        help_text=(
            "Unleash features: name, enabled, strategies (activation strategies with "
            "constraints, segments and variants), variants, dependencies, impressionData, "
            "stale; Rollcall's own details in `rollcall` (valueType, displayName, tags, "
            "lifecycle)."
        ),
    )
    segments = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Segments {id, name, constraints}; matched to Rollcall's by name.",
    )


class ImportApi(APIView):
    required_permissions = {"POST": "flags.change_flag"}

    class OutputSerializer(serializers.Serializer):
        environment = serializers.CharField()
        created_environment = serializers.BooleanField()
        created_flags = serializers.ListField(child=serializers.CharField())
        updated_flags = serializers.ListField(child=serializers.CharField())
        unchanged_flags = serializers.ListField(child=serializers.CharField())
        created_segments = serializers.ListField(child=serializers.CharField())
        updated_segments = serializers.ListField(child=serializers.CharField())
        warnings = serializers.ListField(
            child=serializers.CharField(),
            help_text=(
                "What was kept but never matches, as Unleash evaluates it (an unknown operator "
                "or strategy, a regex the engine's dialect rejects, a missing segment or parent)."
            ),
        )
        message = serializers.CharField()

    @extend_schema(
        tags=TAGS,
        operation_id="environment_import",
        summary="Import flags into an environment (all or nothing)",
        description=(
            "Validates the whole document first and changes nothing when anything is wrong "
            "(400 with every problem, one per line, in `message`). Creates or updates flags, "
            "their state in this environment and segments; never deletes. What Unleash itself "
            "tolerates (unknown operators and strategies, missing segments or parents) is kept, "
            "evaluated as Unleash does (false) and listed in `warnings`."
        ),
        parameters=[
            OpenApiParameter(
                "create",
                OpenApiTypes.BOOL,
                description="Create the environment when it does not exist (admins).",
            )
        ],
        request=DocumentSerializer,
        responses={200: OutputSerializer},
    )
    def post(self, request: Request, key: str) -> Response:
        create = str(request.query_params.get("create", "")).lower() in {"1", "true", "yes"}
        environment: Environment | str | None = Environment.objects.filter(key=key).first()
        if environment is None:
            if not create:
                raise NotFound(f"There is no environment {key!r}.")
            if not request.user.has_perm("flags.add_environment"):
                raise PermissionDenied(
                    permission_denied_message("flags.add_environment", "create environments")
                )
            environment = key
        data: Any = request.data
        result = flags_import(
            environment=environment, data=data, actor=request.user, create_environment=create
        )
        return Response(
            self.OutputSerializer(
                {
                    "environment": result.environment.key,
                    "created_environment": result.created_environment,
                    "created_flags": result.created_flags,
                    "updated_flags": result.updated_flags,
                    "unchanged_flags": result.unchanged_flags,
                    "created_segments": result.created_segments,
                    "updated_segments": result.updated_segments,
                    "warnings": result.warnings,
                    "message": result.summary(),
                }
            ).data
        )


class ExportApi(APIView):
    required_permissions = {"GET": "flags.view_flag"}

    @extend_schema(
        tags=TAGS,
        operation_id="environment_export",
        summary="Export an environment's flags and segments",
        description=(
            "The document SDKs download from /api/client/features, plus switched-off rules and "
            "segment descriptions; import it back with the import endpoint or `manage.py "
            "flags_import`."
        ),
        responses={200: DocumentSerializer},
    )
    def get(self, request: Request, key: str) -> Response:
        environment = Environment.objects.filter(key=key).first()
        if environment is None:
            raise NotFound(f"There is no environment {key!r}.")
        return Response(flags_export(environment=environment))
