"""Generated wire code for proto/ioin/v1 (``make proto``); do not edit by hand."""
