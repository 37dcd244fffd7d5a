//! The default `files` component: the handler of `reshost-files-handler`, as is.

use reshost_files_handler::Files;

reshost_files_handler::export!(Files with_types_in reshost_files_handler);
