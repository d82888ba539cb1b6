"""One module of checks per lesson; each registers its checks with `gptcourse.grading.core.register`."""
