/* Status codes, error text and the thread-local last error. */
#include "core.h"
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *kiln_status_str(kiln_status s)
{
    switch (s) {
#define KILN_STATUS_CASE(name, value, text) \
    case name:                              \
        return text;
        KILN_STATUS_LIST(KILN_STATUS_CASE)
#undef KILN_STATUS_CASE
    }
    return "unknown status";
}

const char *kiln_last_error(void) { return last_error; }

void kiln__set_last_error(const char *msg)
{
    snprintf(last_error, sizeof last_error, "%s", msg ? msg : "");
}

kiln_status kiln__fail(kiln_err *err, kiln_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

void kiln__err_prefix(kiln_err *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}
