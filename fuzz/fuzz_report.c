/* The report-line parser (what a task writes to $TRAINYARD_REPORT). */
#include "common/report.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Ty__ReportItem item = TY__REPORT_ITEM__INIT;
    if (ty_report_parse((const char *)data, size, &item) == 0)
        ty_report_item_clear(&item);
    return 0;
}
