"""Notices API: audiences, templates, communication plans, notices (create, send, cancel,
retry). One view per resource operation, each calling `comms.services`."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from comms import selectors, services
from comms.api import serializers as s
from comms.models import Audience, Delivery, Notice, NoticeTemplate
from core.exceptions import ApplicationError
from core.http import AuthenticatedApiRequest
from rollouts.models import Rollout

AUDIENCES, TEMPLATES, PLANS, NOTICES = ["audiences"], ["notice templates"], ["plans"], ["notices"]
# Audiences and channels are admin settings: writes need the channel permissions.
AUDIENCE_WRITE = "comms.change_channel"


def _notice(pk: int) -> Notice:
    return get_object_or_404(
        Notice.objects.select_related("audience", "rollout").prefetch_related("deliveries"), pk=pk
    )


def _notice_response(notice: Notice, code: int = status.HTTP_200_OK) -> Response:
    notice = _notice(notice.pk)
    data = s.NoticeOutputSerializer(notice, context={"with_deliveries": True}).data
    return Response(data, status=code)


# --------------------------------------------------------------------------------------------
# Audiences


class AudienceListCreateApi(APIView):
    required_permissions = {"GET": "comms.view_audience", "POST": "comms.add_channel"}

    @extend_schema(tags=AUDIENCES, responses=s.AudienceOutputSerializer(many=True))
    def get(self, request: AuthenticatedApiRequest) -> Response:
        audiences = Audience.objects.annotate(channel_count=Count("channels")).order_by("name")
        return Response(s.AudienceOutputSerializer(audiences, many=True).data)

    @extend_schema(
        tags=AUDIENCES,
        request=s.AudienceInputSerializer,
        responses={201: s.AudienceOutputSerializer},
    )
    def post(self, request: AuthenticatedApiRequest) -> Response:
        data = s.AudienceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        audience = services.audience_create(actor=request.user, **data.validated_data)
        return Response(s.AudienceOutputSerializer(audience).data, status=status.HTTP_201_CREATED)


class AudienceDetailApi(APIView):
    required_permissions = {
        "GET": "comms.view_audience",
        "PATCH": AUDIENCE_WRITE,
        "DELETE": "comms.delete_channel",
    }

    @extend_schema(tags=AUDIENCES, responses=s.AudienceOutputSerializer)
    def get(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        return Response(s.AudienceOutputSerializer(get_object_or_404(Audience, pk=pk)).data)

    @extend_schema(
        tags=AUDIENCES, request=s.AudienceUpdateSerializer, responses=s.AudienceOutputSerializer
    )
    def patch(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        data = s.AudienceUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        audience = services.audience_update(
            audience=get_object_or_404(Audience, pk=pk), actor=request.user, **data.validated_data
        )
        return Response(s.AudienceOutputSerializer(audience).data)

    @extend_schema(tags=AUDIENCES, responses={204: None})
    def delete(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        services.audience_delete(audience=get_object_or_404(Audience, pk=pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------
# Templates


class TemplateListCreateApi(APIView):
    required_permissions = {"GET": "comms.view_noticetemplate", "POST": "comms.add_noticetemplate"}

    @extend_schema(tags=TEMPLATES, responses=s.NoticeTemplateOutputSerializer(many=True))
    def get(self, request: AuthenticatedApiRequest) -> Response:
        return Response(s.NoticeTemplateOutputSerializer(selectors.template_list(), many=True).data)

    @extend_schema(
        tags=TEMPLATES,
        request=s.NoticeTemplateInputSerializer,
        responses={201: s.NoticeTemplateOutputSerializer},
    )
    def post(self, request: AuthenticatedApiRequest) -> Response:
        data = s.NoticeTemplateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = services.template_create(actor=request.user, **data.validated_data)
        return Response(
            s.NoticeTemplateOutputSerializer(template).data, status=status.HTTP_201_CREATED
        )


class TemplateDetailApi(APIView):
    required_permissions = {
        "GET": "comms.view_noticetemplate",
        "PATCH": "comms.change_noticetemplate",
        "DELETE": "comms.delete_noticetemplate",
    }

    @extend_schema(tags=TEMPLATES, responses=s.NoticeTemplateOutputSerializer)
    def get(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        return Response(
            s.NoticeTemplateOutputSerializer(get_object_or_404(NoticeTemplate, pk=pk)).data
        )

    @extend_schema(
        tags=TEMPLATES,
        request=s.NoticeTemplateUpdateSerializer,
        responses=s.NoticeTemplateOutputSerializer,
    )
    def patch(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        data = s.NoticeTemplateUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = services.template_update(
            template=get_object_or_404(NoticeTemplate, pk=pk),
            actor=request.user,
            **data.validated_data,
        )
        return Response(s.NoticeTemplateOutputSerializer(template).data)

    @extend_schema(tags=TEMPLATES, responses={204: None})
    def delete(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        services.template_delete(
            template=get_object_or_404(NoticeTemplate, pk=pk), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------
# Plans


def _plan_response(rollout: Rollout) -> Response:
    stored, rules = selectors.plan_rules(rollout)
    body = {
        "rollout": rollout.key,
        "is_default": stored is None,
        "rules": rules,
        "planned": selectors.planned_notices(rollout, timezone.now()),
    }
    return Response(s.NoticePlanOutputSerializer(body).data)


class PlanApi(APIView):
    required_permissions = {
        "GET": "comms.view_communicationplan",
        "PUT": "comms.change_communicationplan",
    }

    @extend_schema(tags=PLANS, responses=s.NoticePlanOutputSerializer)
    def get(self, request: AuthenticatedApiRequest, key: str) -> Response:
        """The rollout's rules (the strategy's defaults until stored) and its planned notices."""
        return _plan_response(get_object_or_404(Rollout, key=key))

    @extend_schema(
        tags=PLANS, request=s.NoticePlanInputSerializer, responses=s.NoticePlanOutputSerializer
    )
    def put(self, request: AuthenticatedApiRequest, key: str) -> Response:
        """Replace every rule; scheduled notices follow (moved, created or cancelled)."""
        rollout = get_object_or_404(Rollout, key=key)
        data = s.NoticePlanInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.plan_rules_replace(
            rollout=rollout, rules=data.validated_data["rules"], actor=request.user
        )
        return _plan_response(rollout)


# --------------------------------------------------------------------------------------------
# Notices


class NoticeListCreateApi(APIView):
    required_permissions = {"GET": "comms.view_notice", "POST": "comms.add_notice"}

    @extend_schema(
        tags=NOTICES,
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=Notice.State.values),
            OpenApiParameter("audience", OpenApiTypes.INT),
            OpenApiParameter("rollout", OpenApiTypes.STR, description="Rollout key."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="At most 500 (default 100)."),
        ],
        responses=s.NoticeOutputSerializer(many=True),
    )
    def get(self, request: AuthenticatedApiRequest) -> Response:
        params = request.query_params
        rollout_id = None
        if params.get("rollout"):
            rollout_id = get_object_or_404(Rollout, key=params["rollout"]).id
        audience = params.get("audience")
        if audience and not (audience.isdigit() and len(audience) < 19):
            raise ApplicationError("`audience` must be an audience id.", field="audience")
        limit = params.get("limit", "100")
        notices = selectors.notice_list(
            state=params.get("state") or None,
            audience_id=int(audience) if audience else None,
            rollout_id=rollout_id,
            limit=min(int(limit), 500) if limit.isdigit() else 100,
        )
        return Response(s.NoticeOutputSerializer(notices, many=True).data)

    @extend_schema(
        tags=NOTICES, request=s.NoticeCreateSerializer, responses={201: s.NoticeOutputSerializer}
    )
    def post(self, request: AuthenticatedApiRequest) -> Response:
        """A draft; with `send_at` a scheduled notice; with `send_now` sent at once."""
        data = s.NoticeCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notice = services.notice_create(actor=request.user, **data.validated_data)
        return _notice_response(notice, status.HTTP_201_CREATED)


class NoticeDetailApi(APIView):
    required_permissions = {"GET": "comms.view_notice", "PATCH": "comms.change_notice"}

    @extend_schema(tags=NOTICES, responses=s.NoticeOutputSerializer)
    def get(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        return _notice_response(_notice(pk))

    @extend_schema(
        tags=NOTICES, request=s.NoticeUpdateSerializer, responses=s.NoticeOutputSerializer
    )
    def patch(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        """Edit a draft or scheduled notice; `send_at: null` makes it a draft."""
        data = s.NoticeUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(data.validated_data)
        notice = services.notice_update(notice=_notice(pk), actor=request.user, **fields)
        return _notice_response(notice)


class NoticeSendApi(APIView):
    required_permissions = {"POST": "comms.change_notice"}

    @extend_schema(tags=NOTICES, request=None, responses=s.NoticeOutputSerializer)
    def post(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        return _notice_response(services.notice_send_now(notice=_notice(pk), actor=request.user))


class NoticeCancelApi(APIView):
    required_permissions = {"POST": "comms.change_notice"}

    @extend_schema(
        tags=NOTICES, request=s.NoticeCancelSerializer, responses=s.NoticeOutputSerializer
    )
    def post(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        data = s.NoticeCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notice = services.notice_cancel(
            notice=_notice(pk), actor=request.user, reason=data.validated_data["reason"]
        )
        return _notice_response(notice)


class NoticeRetryApi(APIView):
    required_permissions = {"POST": "comms.change_notice"}

    @extend_schema(tags=NOTICES, request=None, responses=s.NoticeOutputSerializer)
    def post(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        """Retry every failed delivery (same idempotency ids)."""
        notice = _notice(pk)
        services.notice_retry(notice=notice, actor=request.user)
        return _notice_response(notice)


class DeliveryRetryApi(APIView):
    required_permissions = {"POST": "comms.change_notice"}

    @extend_schema(tags=NOTICES, request=None, responses=s.DeliveryOutputSerializer)
    def post(self, request: AuthenticatedApiRequest, pk: int) -> Response:
        delivery = get_object_or_404(Delivery.objects.select_related("notice"), pk=pk)
        delivery = services.delivery_retry(delivery=delivery, actor=request.user)
        return Response(s.DeliveryOutputSerializer(delivery).data)
