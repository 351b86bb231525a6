# Varnish in front of the origin of `cellar bench http` (bench/peers.sh).
# Caching follows the origin's Cache-Control (max-age=3600); the default
# builtin VCL does the rest (it coalesces concurrent misses on one object).
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "19000";
}

sub vcl_deliver {
    # Say whether this response was a hit, for the Cache-Status column
    # (origin offload is measured at the origin regardless).
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
