"""SOAP 1.2 envelopes the simulated cameras answer with (ONVIF device and media services)."""

from __future__ import annotations

import datetime as dt
from html import escape

from sim.identity import Identity

SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
SCHEMA_NS = "http://www.onvif.org/ver10/schema"

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<s:Envelope xmlns:s="{SOAP_NS}" xmlns:tds="{DEVICE_NS}" xmlns:trt="{MEDIA_NS}" '
    f'xmlns:tt="{SCHEMA_NS}" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body>'
)
_TAIL = "</s:Body></s:Envelope>"

GARBAGE = b'<?xml version="1.0"?><s:Envelope xmlns:s="oops"><s:Body><tds:Get\x00\xff<</s:Bo'


def envelope(body: str) -> bytes:
    return (_HEAD + body + _TAIL).encode()


def fault(subcode: str, reason: str, code: str = "s:Sender") -> bytes:
    """A SOAP 1.2 fault with an ONVIF subcode, e.g. ``ter:NotAuthorized``."""
    return envelope(
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{escape(reason)}</s:Text>'
        "</s:Reason></s:Fault>"
    )


def not_authorized(why: str) -> bytes:
    return fault("ter:NotAuthorized", f"Sender not Authorized: {why}")


def action_not_supported(action: str) -> bytes:
    return fault(
        "ter:ActionNotSupported", f"Optional Action Not Implemented: {action}", "s:Receiver"
    )


def system_date_and_time(now: dt.datetime) -> bytes:
    return envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
        f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
        f"<tt:Second>{now.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
        f"<tt:Day>{now.day}</tt:Day></tt:Date>"
        "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def device_information(ident: Identity, serial: str) -> bytes:
    return envelope(
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{escape(ident.manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{escape(ident.model)}</tds:Model>"
        f"<tds:FirmwareVersion>{escape(ident.firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(serial)}</tds:SerialNumber>"
        f"<tds:HardwareId>{escape(ident.hardware_id)}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


def services(base: str, media: bool) -> bytes:
    entries = [
        (DEVICE_NS, f"{base}/onvif/device_service"),
        (EVENTS_NS, f"{base}/onvif/event_service"),
    ]
    if media:
        entries.append((MEDIA_NS, f"{base}/onvif/media_service"))
    body = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>"
        "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
        for ns, xaddr in entries
    )
    return envelope(f"<tds:GetServicesResponse>{body}</tds:GetServicesResponse>")


def capabilities(base: str, media: bool) -> bytes:
    media_part = (
        f"<tt:Media><tt:XAddr>{base}/onvif/media_service</tt:XAddr>"
        "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
        "</tt:StreamingCapabilities></tt:Media>"
        if media
        else ""
    )
    return envelope(
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{base}/onvif/device_service</tt:XAddr></tt:Device>"
        f"<tt:Events><tt:XAddr>{base}/onvif/event_service</tt:XAddr>"
        "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
        "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
        "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
        "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        f"{media_part}</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


PROFILES = (("Profile_1", "MainStream", 1.0), ("Profile_2", "SubStream", 0.25))


def profiles(ident: Identity) -> bytes:
    parts = []
    for token, name, scale in PROFILES:
        width, height = int(ident.width * scale**0.5), int(ident.height * scale**0.5)
        fps = ident.fps if scale == 1.0 else min(ident.fps, 15)
        parts.append(
            f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
            f'<tt:VideoEncoderConfiguration token="venc_{token}"><tt:Name>{name}</tt:Name>'
            f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{ident.encoding}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height>"
            "</tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl>"
            f"<tt:FrameRateLimit>{fps:g}</tt:FrameRateLimit><tt:EncodingInterval>1"
            "</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            "</trt:Profiles>"
        )
    return envelope(f"<trt:GetProfilesResponse>{''.join(parts)}</trt:GetProfilesResponse>")


def media_uri(operation: str, uri: str) -> bytes:
    return envelope(
        f"<trt:{operation}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
        f"</trt:MediaUri></trt:{operation}Response>"
    )


def profile_token(body_op: object) -> str:
    """The ProfileToken a media request names (empty if none)."""
    for child in body_op.iter():  # type: ignore[attr-defined]
        if isinstance(child.tag, str) and child.tag.endswith("}ProfileToken"):
            return (child.text or "").strip()
    return ""


# A 1x1 grey baseline JPEG (SOI ... EOI), small enough to keep inline.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e3334"
    "32ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708"
    "090a0bffc400b5100002010303020403050504040000017d0102030004110512213141061351610722711432"
    "8191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a43444546474849"
    "4a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3"
    "a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9ea"
    "f1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
)
