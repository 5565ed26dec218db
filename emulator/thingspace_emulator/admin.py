"""The admin API under /_emulator/ (no auth; docs/emulator.md documents it): inspect what the
emulator received and sent, inject mobile-originated SMS and faults, change timings, reset."""

import json
import re

from .admin_models import (
    AdminError,
    BehaviourBatch,
    BehaviourList,
    CallbackAttemptList,
    ConfigUpdate,
    ConfigView,
    DeviceView,
    DeviceViewList,
    ExpireRequest,
    ExpireResult,
    FaultCreated,
    FaultList,
    FaultSpec,
    Health,
    MoInject,
    MoInjectBatch,
    MoResult,
    MoResultBatch,
    PortalListener,
    PortalListenerList,
    RequestLog,
    RequestLogEntry,
    ResetResult,
    SentSmsList,
    SentSmsView,
    SinkEntry,
    SinkReceived,
    UnlockRequest,
    UnlockResult,
)
from .api import Reply, Request, parse_body
from .behaviours import Behaviour
from .core import Emulator
from .errors import ApiError
from .wire import CallbackRegistration

CONFIG_FIELDS = {
    "accessTokenTtl": "access_token_ttl",
    "sessionIdleTtl": "session_idle_ttl",
    "smsExpiry": "sms_expiry",
    "deliveryDelay": "delivery_delay",
    "devicePageSize": "device_page_size",
    "callbackRetryDelays": "callback_retry_delays",
    "clockSpeed": "clock_speed",
}


def admin_error(status: int, message: str) -> ApiError:
    return ApiError(status, AdminError(error=message))


def parse(request: Request, model: type):
    return parse_body(request, model, lambda message: admin_error(400, message))


def health(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, Health(status="ok"))


def reset(emulator: Emulator, request: Request) -> Reply:
    emulator.reset()
    return Reply(200, ResetResult(reset=True))


def config_view(emulator: Emulator) -> ConfigView:
    config = emulator.config
    return ConfigView(
        allowAnyCallbackPort=config.allow_any_callback_port,
        allowRemote=config.allow_remote,
        **{name: getattr(config, attribute) for name, attribute in CONFIG_FIELDS.items()},
    )


def get_config(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, config_view(emulator))


def set_config(emulator: Emulator, request: Request) -> Reply:
    update: ConfigUpdate = parse(request, ConfigUpdate)
    for name, value in update.model_dump(exclude_none=True).items():
        setattr(emulator.config, CONFIG_FIELDS[name], value)
    return Reply(200, config_view(emulator))


def expire(emulator: Emulator, request: Request) -> Reply:
    body: ExpireRequest = parse(request, ExpireRequest)
    return Reply(200, ExpireResult(expired=emulator.tokens.expire(body.tokens)))


def unlock(emulator: Emulator, request: Request) -> Reply:
    body: UnlockRequest = parse(request, UnlockRequest)
    emulator.tokens.unlock(body.username)
    emulator.changed()
    return Reply(200, UnlockResult(username=body.username, locked=False))


def requests(emulator: Emulator, request: Request) -> Reply:
    method = request.params.get("method")
    path = request.params.get("path")
    entries = [
        RequestLogEntry(method=m, path=p, query=q, status=s, time=t)
        for m, p, q, s, t in list(emulator.requests)
        if (method is None or m == method.upper()) and (path is None or p == path)
    ]
    return Reply(200, RequestLog(requests=entries))


def sent_sms(emulator: Emulator, request: Request) -> Reply:
    account = request.params.get("account")
    views = [SentSmsView(deviceCount=len(record.devices), **dict(record)) for record in emulator.outbox.records(account)]
    return Reply(200, SentSmsList(messages=views))


def devices(emulator: Emulator, request: Request) -> Reply:
    account = request.params.get("account")
    if account is not None and account not in emulator.fleet.accounts:
        raise admin_error(404, f"account {account} is not in the fleet")
    views = [
        DeviceView(
            accountName=device.account,
            deviceIds=device.device_ids(),
            state=device.state,
            reachable=device.reachable,
            smsReceived=device.sms_received,
            pending=device.pending,
        )
        for device in emulator.fleet.devices()
        if account is None or device.account == account
    ]
    return Reply(200, DeviceViewList(devices=views))


def callbacks(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, CallbackAttemptList(attempts=emulator.callback_log.view()))


def inject_mo(emulator: Emulator, request: Request) -> Reply:
    """One injection (object) or several (array); answers in the same form."""
    batch = request.body.lstrip().startswith(b"[")
    injections = parse(request, MoInjectBatch).root if batch else [parse(request, MoInject)]
    targets = []
    for body in injections:
        if body.accountName not in emulator.fleet.accounts:
            raise admin_error(404, f"account {body.accountName} is not in the fleet")
        device = emulator.fleet.lookup(body.deviceId.kind, body.deviceId.id)
        if device is None or device.account != body.accountName:
            raise admin_error(404, f"device {body.deviceId.kind} {body.deviceId.id} is not in account {body.accountName}")
        targets.append((body, device))
    results = []
    for body, device in targets:
        delivered = emulator.inbox.inject(body.accountName, device, body.message)
        results.append(MoResult(delivered=delivered, queued=not delivered))
    return Reply(200, MoResultBatch(results) if batch else results[0])


def add_behaviours(emulator: Emulator, request: Request) -> Reply:
    """One rule (object) or several (array), added after those in force; answers every rule in force."""
    batch = request.body.lstrip().startswith(b"[")
    rules = parse(request, BehaviourBatch).root if batch else [parse(request, Behaviour)]
    try:
        emulator.behaviours.add(rules)
    except ValueError as exc:
        raise admin_error(404, str(exc)) from None
    return Reply(200, BehaviourList(behaviours=emulator.behaviours.view()))


def list_behaviours(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, BehaviourList(behaviours=emulator.behaviours.view()))


def clear_behaviours(emulator: Emulator, request: Request) -> Reply:
    emulator.behaviours.clear()
    return Reply(200, BehaviourList(behaviours=emulator.behaviours.view()))


def add_portal_listener(emulator: Emulator, request: Request) -> Reply:
    body: PortalListener = parse(request, PortalListener)
    if body.accountName not in emulator.fleet.accounts:
        raise admin_error(404, f"account {body.accountName} is not in the fleet")
    registration = CallbackRegistration(**body.model_dump())
    emulator.registrations.register(registration, portal=True)
    return Reply(200, registration)


def portal_listeners(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, PortalListenerList(listeners=emulator.registrations.portal_listeners()))


def sink_receive(emulator: Emulator, request: Request, name: str) -> Reply:
    """The built-in callback listener: records the body (JSON, else text) and answers 200."""
    try:
        body = json.loads(request.body)
    except ValueError:
        body = request.body.decode("utf-8", "replace")
    emulator.sink_receive(name, body)
    return Reply(200, None)


def sink_list(emulator: Emulator, request: Request, name: str) -> Reply:
    return Reply(200, SinkReceived(received=[SinkEntry(body=body, time=time) for body, time in emulator.sink_entries(name)]))


def add_fault(emulator: Emulator, request: Request) -> Reply:
    spec: FaultSpec = parse(request, FaultSpec)
    try:
        fault_id = emulator.faults.add(spec)
    except re.error as exc:
        raise admin_error(400, f"path is not a regular expression: {exc}") from None
    return Reply(200, FaultCreated(id=fault_id))


def list_faults(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, FaultList(faults=emulator.faults.view()))


def clear_faults(emulator: Emulator, request: Request) -> Reply:
    emulator.faults.clear()
    return Reply(200, FaultList(faults=[]))


def state(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, emulator.snapshot())
