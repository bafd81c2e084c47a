/*
 * Plugin classes built into kiln, registered at the registry's first use.
 * To add one: define `const kiln_plugin_class kiln__plugin_<x>` in its own
 * file (e.g. src/plugins_builtin/<x>.c, compiled into libkiln by the
 * CMake block for src/plugins_builtin) and add one line below.
 * CMake defines KILN_BUILTIN_DEFORM_CONV when src/plugins_builtin/deform_conv.c
 * exists, so this file links before that file is written.
 */
#include "plugin.h"

#ifdef KILN_BUILTIN_DEFORM_CONV
extern const kiln_plugin_class kiln__plugin_deform_conv;
extern const kiln_plugin_class kiln__plugin_modulated_deform_conv2d;
extern const kiln_plugin_class kiln__plugin_mmcv_modulated_deform_conv2d;
#endif

const kiln_plugin_class *const kiln__plugin_builtin_classes[] = {
#ifdef KILN_BUILTIN_DEFORM_CONV
    &kiln__plugin_deform_conv,
    &kiln__plugin_modulated_deform_conv2d,
    &kiln__plugin_mmcv_modulated_deform_conv2d,
#endif
    NULL,
};
