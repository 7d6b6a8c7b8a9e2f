"""Provider normalizers: a telephony system's native payload in, canonical events out.

Each module turns one provider's dialect (Twilio webhooks, PortSIP `call_cdr` and call logs,
Asterisk CEL, FreeSWITCH JSON CDRs) into the events of DESIGN.md section 2, purely: no I/O,
no clock (times come from the payload). `base` holds what they share.
"""
