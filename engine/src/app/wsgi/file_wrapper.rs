//! `wsgi.file_wrapper`: turns a file-like object into an iterable of blocks. The server iterates
//! it like any other result and calls its `close()`, which closes the file.

use pyo3::prelude::*;

/// Block size when the application gives none.
const DEFAULT_BLOCK: usize = 8192;

/// `environ['wsgi.file_wrapper'](filelike, block_size=8192)`.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct FileWrapper {
    file: Py<PyAny>,
    block: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = DEFAULT_BLOCK))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        FileWrapper {
            file: filelike,
            block: block_size.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self.file.bind(py).call_method1("read", (self.block,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let file = self.file.bind(py);
        if file.hasattr("close")? {
            file.call_method0("close")?;
        }
        Ok(())
    }
}
