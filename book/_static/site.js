// Each figure of a page opens its full-size file: a notebook's output images and the book's own figures become
// links to the image they show (the animation player's frames excepted, and images already inside a link).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".cell_output img, figure img").forEach(img => {
    if (img.closest("a, .cg-player") || (img.getAttribute("src") || "").startsWith("data:")) return;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "cg-full-size";
    link.title = "Open the full-size image";
    img.replaceWith(link);
    link.appendChild(img);
  });
});
